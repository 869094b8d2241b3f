"""Benchmark: one real polling cycle over 1,000 local feeds, concurrent vs sequential.

    .venv/bin/python bench/bench_poll.py [--feeds 1000] [--seq-feeds 200] [--latency 0.05] [--match-share 0.1]

What runs is the daemon's own cycle, not a stand-in: each measurement builds a
config (1,000 feeds, the default rule pack in ``rules/``, a temporary SQLite
state file), calls ``Daemon.setup()`` and then

* concurrent: ``Daemon.poll_all()``: the shared ``Fetcher``, at most
  ``defaults.concurrency`` feeds at a time (set to 64 here = 16 hosts x
  ``fetch.per_host`` 4; the config default is 16), parsing and matching in the
  ``WorkerPool`` the daemon picked (worker processes on >= 2 cores);
* sequential (rss2email / feed2exec): ``pipeline.poll(feed)`` for one feed
  after another, parsing and matching in a worker thread, no processes.

Both include fetch, parse, normalization, rule matching, dedup, routing and
the per-feed state commit. Cases:

* (a) every feed answers 304 (measured as the second cycle of the child; the
  first, unmeasured, stored every ETag);
* (a') every feed answers 200 without validators, with the very bytes of the
  previous cycle (a server that ignores ETag/Last-Modified): the daemon hashes
  the body, sees it unchanged and parses nothing;
* (b) every feed answers 200 with 20 new Arabic items (fresh state, so every
  item is new, matched against the rules and committed). ``--match-share`` of
  them (default 10%: 2 per feed) are Deir ez-Zor corpus sentences that fire
  the default rules; the rest are other Arabic news (weather, economy, sport,
  and the evaluation set's hard negatives: العمر as "age", a monastery...),
  which a news feed mostly carries;
* (b, all matching): the same with every item firing a rule, the worst case
  (each item is also fingerprinted, folded into a story and routed).

The sequential baseline runs ``--seq-feeds`` feeds and its wall time is
scaled to the full count (per-feed work is the same for every feed).

The feeds are served by a separate asyncio process on 16 loopback addresses
(127.0.0.1-16, so the per-host limit applies as across real hosts), with
``--latency`` seconds of simulated server time per response; the server is
event-driven, so its own CPU cost stays small (reported as "server CPU s":
on a 2-core machine it competes with the daemon, which a real remote server
would not). Each measurement runs in a fresh child process. Memory is sampled
every 50 ms over that child and all its descendants (worker processes, the
fork server, the resource tracker): "peak PSS" counts each page once, shared
pages split between the processes that share them (what the tree really
occupies, as a systemd cgroup would see it); "peak RSS sum" adds every
process's VmRSS and so counts the pages the workers share copy-on-write with
the fork server, and the libraries' pages, once per process.

Targets (issue 4): (a) < 5 s, (b) >= 5x sequential, peak memory < 250 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
HOSTS = 16
ITEMS = 20
CONCURRENCY = 64


def _sentences() -> list[str]:
    """Sentences of the Deir ez-Zor corpus: each fires the default rules."""
    corpus = ROOT / "tests" / "data" / "corpus"
    text = " ".join(p.read_text(encoding="utf-8") for p in sorted(corpus.glob("*.txt"))) if corpus.is_dir() else ""
    parts = [s.strip() for s in text.replace("\n", " ").split(".") if len(s.strip()) > 40]
    return parts or ["قالت مصادر محلية إن قوات سوريا الديمقراطية سيطرت على حقل العمر النفطي في ريف دير الزور"]


OTHER_NEWS = [
    "توقعت الأرصاد الجوية أمطارا غزيرة على المناطق الساحلية خلال الأيام المقبلة مع انخفاض درجات الحرارة",
    "ارتفع سعر صرف الدولار أمام الليرة في السوق الموازية وسط تراجع حركة التجارة في الأسواق",
    "افتتح وزير الصحة مستشفى جديدا في العاصمة يضم مئتي سرير وأقساما للطوارئ والعناية المركزة",
    "فاز المنتخب الوطني لكرة القدم على ضيفه بهدفين مقابل هدف في مباراة ودية استعدادا للبطولة",
    "أعلنت وزارة التربية مواعيد امتحانات الشهادة الثانوية وعدد المتقدمين هذا العام",
    "شهدت أسعار الذهب تراجعا طفيفا في الأسواق العالمية مع ترقب قرارات البنوك المركزية",
    "انطلقت فعاليات معرض الكتاب الدولي بمشاركة أكثر من خمسمئة دار نشر عربية وأجنبية",
    "قالت شركة الكهرباء إن ساعات التقنين ستتراجع بعد إصلاح خطوط النقل المتضررة في الشمال",
    "وقعت الحكومة اتفاقية لتوريد القمح مع عدد من الدول لتأمين حاجة المخابز من الطحين",
    "أكد اتحاد المزارعين أن موسم الزيتون هذا العام أفضل من العام الماضي رغم قلة الأمطار",
    "نظمت جمعية أهلية حملة لتنظيف الشواطئ شارك فيها مئات المتطوعين من طلاب الجامعات",
    "سجلت البورصة ارتفاعا في مؤشرها العام بدعم من أسهم المصارف وشركات الاتصالات",
]


def _other_news() -> list[str]:
    """Arabic news that must not fire the default rules: the list above plus the
    evaluation set's hard negatives (العمر as "age", الدير as a monastery, ...)."""
    eval_set = ROOT / "tests" / "data" / "eval" / "eval.tsv"
    negatives = []
    if eval_set.is_file():
        for line in eval_set.read_text(encoding="utf-8").splitlines():
            label, _, text = line.partition("\t")
            if label == "-" and text:
                negatives.append(text.replace("\\n", " "))
    return OTHER_NEWS + negatives


def build_feed(index: int, matching: list[str], other: list[str], share: float = 1.0, n_items: int = ITEMS,
               outlets: int = 0) -> bytes:
    """``n_items`` items; the first ``round(n_items * share)`` from ``matching``, the rest from ``other``.

    ``outlets`` 0: a matching item is its corpus sentence alone, so every feed's matching
    items fold into at most ``len(matching)`` stories. ``outlets`` k > 0: each matching item
    is a story of its own, carried by the k neighbouring feeds ``index // k`` (as several
    outlets carry one article, each with its own headline): its sentence goes on with
    corpus words drawn for that story alone, 40 more than twice the sentence's, so two
    stories on one sentence share under a fifth of their shingles (dedup threshold 0.4).
    """
    n_matching = round(n_items * share)
    vocabulary = sorted({word for sentence in matching for word in sentence.split()}) if outlets else []
    items = []
    for j in range(n_items):
        n = index * n_items + j
        if j < n_matching and outlets:
            story = (index // outlets) * n_items + j
            s = matching[story % len(matching)]
            tail = random.Random(story).choices(vocabulary, k=40 + 2 * len(s.split()))
            summary = s + " " + " ".join(tail)
        elif j < n_matching:
            s = matching[n % len(matching)]
            summary = (s + " ") * 3
        else:
            s = other[n % len(other)]
            summary = " ".join(other[(n + k) % len(other)] for k in range(3))
        title = escape(s[:90])
        summary = escape(summary if outlets else summary[:300])
        items.append(f"<item><title>{title} {index}-{j}</title><link>https://news.example/{index}/{j}?utm_source=rss"
                     f"</link><guid>https://news.example/{index}/{j}</guid><description>&lt;p&gt;{summary}&lt;/p&gt;"
                     f"</description><pubDate>Mon, 06 Nov 2017 10:{j:02d}:00 GMT</pubDate></item>")
    return ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>خبر</title>'
            "<link>https://news.example/</link><description>d</description>" + "".join(items)
            + "</channel></rss>").encode()


# --------------------------------------------------------------------------- the feed server

def serve(ready, stop, n_feeds: int, latency: float, share: float, ports, n_items: int = ITEMS,
          outlets: int = 0) -> None:
    """Minimal HTTP/1.1 keep-alive server on asyncio: GET /mix/N.xml (``share`` of the items
    matching) or /all/N.xml (all matching), 304 on a matching ETag."""
    matching, other = _sentences(), _other_news()
    bodies = {"mix": [build_feed(i, matching, other, share, n_items, outlets) for i in range(n_feeds)],
              "all": [build_feed(i, matching, other, 1.0, n_items, outlets) for i in range(n_feeds)]}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                inm = next((line.split(":", 1)[1].strip() for line in lines[1:]
                            if line.lower().startswith("if-none-match:")), None)
                _, kind, name = path.split("/")
                index = int(name.split(".")[0])
                etag = f'"{kind}{index}"'
                if latency:
                    await asyncio.sleep(latency)
                if inm == etag:
                    writer.write(f"HTTP/1.1 304 Not Modified\r\nETag: {etag}\r\nContent-Length: 0\r\n\r\n".encode())
                else:
                    body = bodies["mix" if kind == "same" else kind][index]
                    validator = "" if kind == "same" else f"ETag: {etag}\r\n"  # /same/: a server without validators
                    writer.write(f"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml; charset=utf-8\r\n"
                                 f"{validator}Content-Length: {len(body)}\r\n\r\n".encode() + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, IndexError, KeyError, ValueError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        servers = [await asyncio.start_server(handle, f"127.0.0.{h + 1}", 0, backlog=1024) for h in range(HOSTS)]
        ports.extend([s.sockets[0].getsockname()[1] for s in servers])
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.1)

    asyncio.run(main())


# --------------------------------------------------------------------------- measuring

def _tree(root: int) -> list[int]:
    """``root`` and every descendant (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(children.get(pid, []))
    return pids


def _tree_memory_kb(pids: list[int]) -> tuple[int, int]:
    """(sum of Rss, sum of Pss) over these processes, in KiB (/proc/PID/smaps_rollup)."""
    rss = pss = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
        except OSError:
            pass
    return rss, pss


class PeakMemory:
    """Peak tree RSS sum and peak tree PSS, sampled every 50 ms in a thread."""

    def __init__(self) -> None:
        self.rss_kb = self.pss_kb = 0
        self._pids: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self, refresh: bool = True) -> None:
        if refresh or not self._pids:
            self._pids = _tree(os.getpid())
        rss, pss = _tree_memory_kb(self._pids)
        self.rss_kb, self.pss_kb = max(self.rss_kb, rss), max(self.pss_kb, pss)

    def _run(self) -> None:
        # Every 50 ms, the process list every 0.5 s: the sampler's own CPU (~1 ms a
        # sample) competes with the daemon on a 2-core machine.
        n = 0
        while not self._stop.wait(0.05):
            n += 1
            self._sample(refresh=n % 10 == 0)

    def __enter__(self) -> PeakMemory:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def write_config(tmp: Path, urls: list[str]) -> Path:
    import yaml

    config = {
        "state_path": str(tmp / "state.sqlite3"),
        "rules": [str(ROOT / "rules")],
        "log_level": "WARNING",
        "feeds": [{"name": f"feed-{i}", "url": url} for i, url in enumerate(urls)],
        "channels": {"console": {"url": "console://"}},
        "defaults": {"concurrency": CONCURRENCY},
        "fetch": {"timeout": 60},
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


async def _cycle(config_path: Path, case: str, sequential: bool) -> dict:
    import io

    from monitor.ingest.workers import WorkerPool
    from monitor.service.daemon import Daemon

    daemon = Daemon(config_path, console=io.StringIO(), journald=False)
    daemon.setup()
    if case in ("304", "same"):  # a first, unmeasured cycle stores every feed's items (and ETag)
        await daemon.poll_all()
    if sequential:
        daemon.workers.close()
        daemon.pipeline.workers = WorkerPool(0)  # parse and match in a thread, one feed after another
    else:  # start the workers before the clock, as a running daemon has them
        await daemon.workers.parse(build_feed(0, ["x" * 50], ["y" * 50]), {}, url="http://warm.up/",
                                   feed_name="warm")
    try:
        with PeakMemory() as memory:
            workers_cpu0 = {pid: _cpu_seconds(pid) for pid in _tree(os.getpid())[1:]}
            cpu0, started = time.process_time(), time.perf_counter()
            if sequential:
                outcomes = [await daemon.pipeline.poll(feed) for feed in daemon.config.feeds]
            else:
                outcomes = await daemon.poll_all()
            wall = time.perf_counter() - started
            cpu = time.process_time() - cpu0
            workers_cpu = sum(_cpu_seconds(pid) - workers_cpu0.get(pid, 0.0) for pid in _tree(os.getpid())[1:])
    finally:
        await daemon.close()
    return {"wall": wall, "cpu_main": cpu, "cpu_workers": workers_cpu, "rss_mb": memory.rss_kb / 1024, "pss_mb": memory.pss_kb / 1024,
            "n": len(outcomes),
            "items": sum(o.items for o in outcomes), "new": sum(o.new_items for o in outcomes),
            "alerts": sum(o.alerts_new for o in outcomes),
            "not_modified": sum(o.status == "not_modified" for o in outcomes),
            "errors": sum(o.status == "error" for o in outcomes),
            "error_sample": next((o.error for o in outcomes if o.status == "error"), None),
            "workers": 0 if sequential else daemon.workers.workers}


def child(args) -> None:
    ports = json.loads(args.ports)
    urls = [f"http://127.0.0.{i % HOSTS + 1}:{ports[i % HOSTS]}/{args.path}/{i}.xml" for i in range(args.n)]
    with tempfile.TemporaryDirectory(prefix="bench_poll.") as tmp:
        config = write_config(Path(tmp), urls)
        result = asyncio.run(_cycle(config, args.case, args.mode == "sequential"))
    print(json.dumps(result))


def run_child(case: str, path: str, mode: str, n: int, ports: list[int]) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", "--case", case, "--path", path, "--mode", mode,
                          "--n", str(n), "--ports", json.dumps(ports)], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"child {case}/{mode} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _median_run(runs: list[dict]) -> dict:
    """The run with the median wall time, plus the range of all walls and the largest memory."""
    ordered = sorted(runs, key=lambda r: r["wall"])
    out = dict(ordered[len(ordered) // 2])
    out["walls"] = [r["wall"] for r in ordered]
    out["pss_mb"] = max(r["pss_mb"] for r in runs)
    out["rss_mb"] = max(r["rss_mb"] for r in runs)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--feeds", type=int, default=1000)
    ap.add_argument("--seq-feeds", type=int, default=200)
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs of each case and mode, interleaved; the table shows medians")
    ap.add_argument("--match-share", type=float, default=0.1,
                    help="share of the 20 items per feed in case (b) that fire the default rules")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--case", help=argparse.SUPPRESS)
    ap.add_argument("--path", help=argparse.SUPPRESS)
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--ports", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return

    ctx = multiprocessing.get_context("spawn")
    manager = ctx.Manager()
    ports = manager.list()
    ready, stop = ctx.Event(), ctx.Event()
    server = ctx.Process(target=serve, args=(ready, stop, args.feeds, args.latency, args.match_share, ports),
                         daemon=True)
    server.start()
    share = f"{args.match_share:.0%}"
    cases = [("(a) all 304", "304", "mix"),
             ("(a') all 200 without validators, same bytes as the last poll", "same", "same"),
             (f"(b) all 200, {ITEMS} new items, {share} matching", "200", "mix"),
             (f"(b) all 200, {ITEMS} new items, all matching", "200", "all")]
    rows = []
    try:
        if not ready.wait(60):
            raise SystemExit("feed server did not start")
        port_list = list(ports)
        for label, case, path in cases:
            samples: dict[str, list[dict]] = {"concurrent": [], "sequential": []}
            for _ in range(args.repeat):  # interleaved: a machine that drifts affects both modes alike
                for mode, n in (("concurrent", args.feeds), ("sequential", args.seq_feeds)):
                    cpu0 = _cpu_seconds(server.pid)
                    run = run_child(case, path, mode, n, port_list)
                    run["server_cpu"] = _cpu_seconds(server.pid) - cpu0
                    samples[mode].append(run)
            rows.append((label, {mode: _median_run(runs) for mode, runs in samples.items()}))
    finally:
        stop.set()
        server.join(10)
        manager.shutdown()

    scale = args.feeds / args.seq_feeds
    print(f"\nOne real polling cycle (Daemon.poll_all: fetch, parse, normalize, match, dedup, route, state commit) "
          f"over {args.feeds} loopback feeds on {HOSTS} hosts, {args.latency * 1000:.0f} ms simulated server "
          f"latency, concurrency {CONCURRENCY}, {os.cpu_count()} CPUs. Sequential baseline: pipeline.poll one feed "
          f"after another on {args.seq_feeds} feeds, wall time scaled x{scale:g}. Each row: the median of "
          f"{args.repeat} runs (interleaved with the other mode), with the range of wall times.\n")
    print("| case | mode | workers | feeds | wall s (range) | items | items/s | alerts | errors | CPU s main + workers "
          "| server CPU s | peak PSS MB | peak RSS sum MB | speed-up |")
    print("|" + "---|" * 14)
    for label, runs in rows:
        conc, seq = runs["concurrent"], runs["sequential"]
        seq_full = seq["wall"] * scale
        for mode, r in (("concurrent", conc), ("sequential", seq)):
            wall = r["wall"] if mode == "concurrent" else seq_full
            k = scale if mode == "sequential" else 1.0
            est = " est." if mode == "sequential" and r["n"] != args.feeds else ""
            spread = f" ({min(r['walls']) * k:.1f}-{max(r['walls']) * k:.1f}{est})"
            ips = r["items"] / r["wall"] if r["wall"] else 0
            speed = seq_full / conc["wall"] if mode == "concurrent" else 1.0
            print(f"| {label} | {mode} | {r['workers'] or 'thread'} | {r['n']} | {wall:.2f}{spread} | {r['items']} | "
                  f"{ips:,.0f} | {r['alerts']} | {r['errors']} | {r['cpu_main']:.1f} + {r['cpu_workers']:.1f} | "
                  f"{r['server_cpu']:.1f} | {r['pss_mb']:.0f} | {r['rss_mb']:.0f} | {speed:.1f}x |")
            if r["errors"]:
                print(f"|   first error: {r['error_sample']} |")
    a = rows[0][1]["concurrent"]
    pss = max(r["pss_mb"] for _, runs in rows for r in runs.values())
    rss = max(r["rss_mb"] for _, runs in rows for r in runs.values())
    verdicts = [f"(a) wall {a['wall']:.2f} s < 5 s: {'PASS' if a['wall'] < 5 else 'FAIL'}"]
    for label, runs in rows[2:]:
        ratio = runs["sequential"]["wall"] * scale / runs["concurrent"]["wall"]
        verdicts.append(f"{label.split(',', 1)[1].strip()}: speed-up {ratio:.1f}x >= 5x: "
                        f"{'PASS' if ratio >= 5 else 'FAIL'}")
    verdicts.append(f"peak PSS {pss:.0f} MB < 250 MB: {'PASS' if pss < 250 else 'FAIL'} "
                    f"(RSS sum {rss:.0f} MB: {'under' if rss < 250 else 'over'})")
    print("\ntargets: " + "; ".join(verdicts))


if __name__ == "__main__":
    main()
