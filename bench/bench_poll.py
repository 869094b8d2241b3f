"""Benchmark: one real polling cycle over 1,000 local feeds, concurrent vs sequential.

    .venv/bin/python bench/bench_poll.py [--feeds 1000] [--seq-feeds 200] [--latency 0.05]

What runs is the daemon's own cycle, not a stand-in: each measurement builds a
config (1,000 feeds, the default rule pack in ``rules/``, a temporary SQLite
state file), calls ``Daemon.setup()`` and then

* concurrent: ``Daemon.poll_all()``: the shared ``Fetcher``, at most
  ``defaults.concurrency`` feeds at a time (set to 64 here = 16 hosts x
  ``fetch.per_host`` 4; the config default is 16), parsing in the
  ``WorkerPool`` the daemon picked (worker processes on >= 2 cores);
* sequential (rss2email / feed2exec): ``pipeline.poll(feed)`` for one feed
  after another, parsing in the calling thread's worker thread, no pool.

Both include fetch, parse, normalization, rule matching, dedup, routing and
the per-feed state commit. Cases: (a) every feed answers 304 (measured as the
second cycle of the child; the first, unmeasured, stored every ETag), (b) every feed answers 200 with 20 new Arabic
items (fresh state, so every item is new and is matched and committed).

The sequential baseline runs ``--seq-feeds`` feeds and its wall time is
scaled to the full count (per-feed work is the same for every feed).

The feeds are served by a separate asyncio process on 16 loopback addresses
(127.0.0.1-16, so the per-host limit applies as across real hosts), with
``--latency`` seconds of simulated server time per response; the server is
event-driven, so its own CPU cost stays small (reported as "server CPU s":
on a 2-core machine it competes with the daemon, which a real remote server
would not). Each measurement runs in a fresh child process; "peak RSS" is the
largest sum of VmRSS over that child and all its descendants (parse workers
and the fork server), sampled every 20 ms.

Targets (issue 4): (a) < 5 s, (b) >= 5x sequential, peak RSS < 250 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
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
    corpus = ROOT / "tests" / "data" / "corpus"
    text = " ".join(p.read_text(encoding="utf-8") for p in sorted(corpus.glob("*.txt"))) if corpus.is_dir() else ""
    parts = [s.strip() for s in text.replace("\n", " ").split(".") if len(s.strip()) > 40]
    return parts or ["قالت مصادر محلية إن قوات سوريا الديمقراطية سيطرت على حقل العمر النفطي في ريف دير الزور"]


def build_feed(index: int, sentences: list[str]) -> bytes:
    items = []
    for j in range(ITEMS):
        s = sentences[(index * ITEMS + j) % len(sentences)]
        title = escape(s[:90])
        summary = escape((s + " ") * 3)[:300]
        items.append(f"<item><title>{title} {index}-{j}</title><link>https://news.example/{index}/{j}?utm_source=rss"
                     f"</link><guid>https://news.example/{index}/{j}</guid><description>&lt;p&gt;{summary}&lt;/p&gt;"
                     f"</description><pubDate>Mon, 06 Nov 2017 10:{j:02d}:00 GMT</pubDate></item>")
    return ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>خبر</title>'
            "<link>https://news.example/</link><description>d</description>" + "".join(items)
            + "</channel></rss>").encode()


# --------------------------------------------------------------------------- the feed server

def serve(ready, stop, n_feeds: int, latency: float, ports) -> None:
    """Minimal HTTP/1.1 keep-alive server on asyncio: GET /feed/N.xml, 304 on a matching ETag."""
    sentences = _sentences()
    bodies = [build_feed(i, sentences) for i in range(n_feeds)]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                inm = next((line.split(":", 1)[1].strip() for line in lines[1:]
                            if line.lower().startswith("if-none-match:")), None)
                index = int(path.rsplit("/", 1)[-1].split(".")[0])
                etag = f'"v{index}"'
                if latency:
                    await asyncio.sleep(latency)
                if inm == etag:
                    writer.write(f"HTTP/1.1 304 Not Modified\r\nETag: {etag}\r\nContent-Length: 0\r\n\r\n".encode())
                else:
                    body = bodies[index]
                    writer.write(f"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml; charset=utf-8\r\n"
                                 f"ETag: {etag}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, IndexError, ValueError):
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

def _tree_rss_kb(root: int) -> int:
    """VmRSS of ``root`` and every descendant, in KiB (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


class PeakRss:
    def __init__(self) -> None:
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak_kb = max(self.peak_kb, _tree_rss_kb(os.getpid()))

    def __enter__(self) -> "PeakRss":
        self.peak_kb = _tree_rss_kb(os.getpid())
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kb = max(self.peak_kb, _tree_rss_kb(os.getpid()))


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

    from monitor.daemon import Daemon

    daemon = Daemon(config_path, console=io.StringIO(), journald=False)
    daemon.setup()
    if case == "304":  # a first, unmeasured cycle stores every feed's items and ETag
        await daemon.poll_all()
    if sequential:
        daemon.workers.close()
        daemon.pipeline.workers = None
    else:  # start the workers before the clock, as a running daemon has them
        await daemon.workers.parse(build_feed(0, ["x" * 50]), {}, url="http://warm.up/", feed_name="warm")
    try:
        with PeakRss() as rss:
            cpu0, started = time.process_time(), time.perf_counter()
            if sequential:
                outcomes = [await daemon.pipeline.poll(feed) for feed in daemon.config.feeds]
            else:
                outcomes = await daemon.poll_all()
            wall = time.perf_counter() - started
            cpu = time.process_time() - cpu0
    finally:
        await daemon.close()
    return {"wall": wall, "cpu_main": cpu, "rss_mb": rss.peak_kb / 1024, "n": len(outcomes),
            "items": sum(o.items for o in outcomes), "new": sum(o.new_items for o in outcomes),
            "alerts": sum(o.alerts_new for o in outcomes),
            "not_modified": sum(o.status == "not_modified" for o in outcomes),
            "errors": sum(o.status == "error" for o in outcomes),
            "error_sample": next((o.error for o in outcomes if o.status == "error"), None),
            "workers": 0 if sequential else daemon.workers.workers}


def child(args) -> None:
    ports = json.loads(args.ports)
    urls = [f"http://127.0.0.{i % HOSTS + 1}:{ports[i % HOSTS]}/feed/{i}.xml" for i in range(args.n)]
    with tempfile.TemporaryDirectory(prefix="bench_poll.") as tmp:
        config = write_config(Path(tmp), urls)
        result = asyncio.run(_cycle(config, args.case, args.mode == "sequential"))
    print(json.dumps(result))


def run_child(case: str, mode: str, n: int, ports: list[int]) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", "--case", case, "--mode", mode, "--n", str(n),
                          "--ports", json.dumps(ports)], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"child {case}/{mode} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--feeds", type=int, default=1000)
    ap.add_argument("--seq-feeds", type=int, default=200)
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--case", help=argparse.SUPPRESS)
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
    server = ctx.Process(target=serve, args=(ready, stop, args.feeds, args.latency, ports), daemon=True)
    server.start()
    rows = []
    try:
        if not ready.wait(60):
            raise SystemExit("feed server did not start")
        port_list = list(ports)
        for case in ("304", "200"):
            runs = {}
            for mode, n in (("concurrent", args.feeds), ("sequential", args.seq_feeds)):
                cpu0 = _cpu_seconds(server.pid)
                runs[mode] = run_child(case, mode, n, port_list)
                runs[mode]["server_cpu"] = _cpu_seconds(server.pid) - cpu0
            rows.append((case, runs))
    finally:
        stop.set()
        server.join(10)
        manager.shutdown()

    scale = args.feeds / args.seq_feeds
    print(f"\nOne real polling cycle (Daemon.poll_all: fetch, parse, normalize, match, dedup, route, state commit) "
          f"over {args.feeds} loopback feeds on {HOSTS} hosts, {args.latency * 1000:.0f} ms simulated server "
          f"latency, concurrency {CONCURRENCY}, {os.cpu_count()} CPUs. Sequential baseline: pipeline.poll one feed "
          f"after another on {args.seq_feeds} feeds, wall time scaled x{scale:g}.\n")
    print("| case | mode | parse workers | feeds | wall s | items | items/s | feeds/s | alerts | errors "
          "| main CPU s | server CPU s | peak RSS MB (tree) | speed-up |")
    print("|" + "---|" * 14)
    verdicts = []
    for case, runs in rows:
        label = "(a) all 304" if case == "304" else f"(b) all 200, {ITEMS} new items"
        conc, seq = runs["concurrent"], runs["sequential"]
        seq_full = seq["wall"] * scale
        for mode, r in (("concurrent", conc), ("sequential", seq)):
            wall = r["wall"] if mode == "concurrent" else seq_full
            est = " (est.)" if mode == "sequential" and r["n"] != args.feeds else ""
            ips = r["items"] / r["wall"] if r["wall"] else 0
            fps = r["n"] / r["wall"] if r["wall"] else 0
            speed = seq_full / conc["wall"] if mode == "concurrent" else 1.0
            print(f"| {label} | {mode} | {r['workers'] or 'thread'} | {r['n']} | {wall:.2f}{est} | {r['items']} | "
                  f"{ips:,.0f} | {fps:,.0f} | {r['alerts']} | {r['errors']} | {r['cpu_main']:.1f} | "
                  f"{r['server_cpu']:.1f} | {r['rss_mb']:.0f} | {speed:.1f}x |")
            if r["errors"]:
                print(f"|   first error: {r['error_sample']} |")
        verdicts.append((case, conc, seq_full))
    (_, a, _), (_, b, b_seq) = verdicts
    peak = max(r["rss_mb"] for _, runs in rows for r in runs.values())
    print(f"\ntargets: (a) wall {a['wall']:.2f} s < 5 s: {'PASS' if a['wall'] < 5 else 'FAIL'}; "
          f"(b) speed-up {b_seq / b['wall']:.1f}x >= 5x: {'PASS' if b_seq / b['wall'] >= 5 else 'FAIL'}; "
          f"peak RSS {peak:.0f} MB < 250 MB: {'PASS' if peak < 250 else 'FAIL'}")


if __name__ == "__main__":
    main()
