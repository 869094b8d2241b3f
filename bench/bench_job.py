"""Benchmark: the whole job as a user runs it, ``monitor run --once`` against lemon24/reader.

    PYTHONPATH=. .venv/bin/python bench/bench_job.py [--feeds 1000] [--items 20] [--latency 0.05]
        [--match-share 0.1] [--history 1000,100000] [--repeat 1] [--no-reader] [--json]

Why: ``bench_poll`` times ``Daemon.poll_all()`` inside one process; a user waits
for more (start-up, delivery, exit). Here the daemon is the real command, run as
a process, ``python -m monitor run --once --config CFG``, timed from just
before it is spawned to its exit (``os.wait4``, which also gives the CPU of the
process and the children it reaped). ``run --once`` polls every feed, then
drains the outbox (``Deliverer.drain``), then exits; the bench checks that it
really waited: every message the daemon reports must have reached the
recording server before the exit, and none may be left "waiting" (the drain
gives up after 30 s plus 5 s of grace and leaves the rest queued; a row then
says INCOMPLETE, and for (1) the bench runs ``run --once`` again on the same
state until nothing waits, as a user of ``--once`` would, and reports the
time to that: so the all-304 cycle (3) after it measures 304s alone).

The farm is ``bench_poll``'s: an asyncio HTTP server in its own process, on 16
loopback addresses, ``--latency`` seconds per response, 304 on a matching
ETag, ``--items`` Arabic items per feed built by ``bench_poll.build_feed``
(Deir ez-Zor corpus sentences that fire the default rules, or other Arabic
news and the evaluation set's hard negatives that do not). Each matching item
is a story of its own, carried by ``--outlets`` neighbouring feeds (default 4,
each with its own headline and link), so dedup folds 4 items into one story
and one message: 1,000 x 20 all matching gives 5,000 stories, the shape of
the run in issue 12 (16,209 alerts, 4,713 messages).

Variants, each on a fresh state: (1) every item matching the default rules
(``rules/``); (2) ``--match-share`` of them matching (default 10 %); (3) the
second cycle of (1) on the same state, every feed answering 304. The config
is a user's: the default rules and settings, one channel, nothing tuned.

The channel is Apprise's ``json://`` webhook pointed at a recording HTTP
server in its own process (``channel_url``, the one place that names it). The
recorder counts every POST and keeps its arrival time (``time.monotonic``, one
clock for all processes on Linux), so the time of the last message is known.

The peer, lemon24/reader 3.26 (the ``bench`` extra), polls the same farm in
its own process: ``make_reader(db)`` and ``update_feeds(workers=8,
scheduled=False)`` (``scheduled=False``: the 304 cycle runs right after the
first, before reader's own schedule would poll again), start-up included. It
stores entries only: no matching, no dedup, no delivery. Its feeds are added
beforehand in an untimed process, as the monitor's are written to its config
file beforehand.

Memory: every 50 ms the bench reads /proc for the measured process and all its
descendants (the daemon's fork server and worker processes, the resource
tracker): the peak of the PSS sum (each page counted once, shared pages split
between their sharers: what the tree really occupies, as its cgroup sees it)
and the peak of the RSS sum (shared pages counted once per process).

History ("per-item cost flat as history grows"): the new cycle of (1) runs
again on states that already hold ``--history`` alerts (1,000 and 100,000),
each with its story, its item and its sent outbox row, 4 to 29 days old:
inside the default 30-day retention, outside the 72 h dedup window, as after
a month of service. ``seed_history`` writes them through the monitor's own
functions. Per item: the polling phase (start to first message) over new
items; per message: the delivery phase (first to last message) over the
messages after the first.

The daemon's own time per message, apart from the channel's. In ``run
--once`` delivery starts after polling ends and messages go out one after
another on the one channel, so each gap between two arrivals at the recorder
is the daemon's bookkeeping (mark sent, claim the next, load, render, hand to
a thread) plus one send. The send alone is measured in the same run by a
separate process that calls the monitor's own ``send_test_message`` through
the same channel settings (the same Apprise call in a thread the daemon makes)
``--calibrate`` times: its median wall time and its mean CPU per send. So:
own wall per message = (last - first arrival) / (messages - 1) - send wall;
own CPU per message = tree CPU between the first and last arrival (from the
/proc samples, interpolated) / (messages - 1) - send CPU. The test message is
shorter than an alert; on loopback a few KB more in one POST is noise.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE)]

CHANNEL_NAME = "bench"
READER_WORKERS = 8
SAMPLE_EVERY = 0.05
HISTORY_DAYS = (4.0, 29.0)  # history lies this many days back (see the module docstring)
SEED_BATCH = 1000
MAX_REST_RUNS = 10


# --------------------------------------------------------------------------- the channel

def channel_url(port: int, tag: str) -> str:
    """The URL of the one channel every monitor run delivers to: Apprise's JSON webhook at
    the recording server, under ``/tag`` so each run's messages are counted apart.

    The only place that names it: the daemon's config and the send-time calibration
    both take it from here.
    """
    return f"json://127.0.0.1:{port}/{tag}"


class _RecordingServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _RecordingHandler)
        self.lock = threading.Lock()
        self.arrivals: dict[str, list[float]] = {}
        self.sizes: dict[str, int] = {}

    def record(self, tag: str, arrived: float, size: int) -> None:
        with self.lock:
            self.arrivals.setdefault(tag, []).append(arrived)
            self.sizes[tag] = self.sizes.get(tag, 0) + size

    def stats(self, tag: str) -> dict[str, Any]:
        with self.lock:
            return {"arrivals": list(self.arrivals.get(tag, [])), "bytes": self.sizes.get(tag, 0)}


class _RecordingHandler(BaseHTTPRequestHandler):
    """POST /tag: one message (any body), answered 200 at once; GET /stats/tag: what arrived."""

    protocol_version = "HTTP/1.1"
    server: _RecordingServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        arrived = time.monotonic()
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.record(self.path.strip("/"), arrived, len(body))
        self._answer(b"")

    def do_GET(self) -> None:
        tag = self.path.removeprefix("/stats/").strip("/")
        self._answer(json.dumps(self.server.stats(tag)).encode())

    def _answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def run_recorder(port_queue: Any, stop: Any) -> None:
    """Process target: serve the recorder until ``stop`` is set."""
    server = _RecordingServer()
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    port_queue.put(server.server_address[1])
    stop.wait()
    server.shutdown()


def received(port: int, tag: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats/{tag}", timeout=30) as answer:
        data: dict[str, Any] = json.loads(answer.read())
    return data


def calibrate_channel(url: str, count: int) -> dict[str, float]:
    """Time ``count`` sends through the monitor's own channel code (after 3 unmeasured ones).

    Runs in its own process (``--calibrate``); returns the median wall time and the
    mean CPU (all threads of the process) of one send, in seconds.
    """
    import asyncio

    from monitor.alerts.deliver import send_test_message
    from monitor.alerts.settings import ChannelSettings

    settings = ChannelSettings.model_validate({"url": url})

    async def sends() -> dict[str, float]:
        for _ in range(3):
            await send_test_message(CHANNEL_NAME, settings)
        walls = []
        cpu0 = time.process_time()
        for _ in range(count):
            started = time.perf_counter()
            await send_test_message(CHANNEL_NAME, settings)
            walls.append(time.perf_counter() - started)
        return {"wall": statistics.median(walls), "cpu": (time.process_time() - cpu0) / count,
                "wall_p90": sorted(walls)[int(0.9 * (count - 1))]}

    return asyncio.run(sends())


# --------------------------------------------------------------------------- measuring a process tree

def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU of one process (not its children), None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class TreeSampler:
    """Peak PSS sum, peak RSS sum and a CPU time series of ``root`` and its descendants.

    The CPU series undercounts a process by what it spent after its last sample
    (at most 50 ms of its life); fine for phases of seconds.
    """

    def __init__(self, root: int) -> None:
        self.root = root
        self.rss_kb = self.pss_kb = 0
        self.cpu: list[tuple[float, float]] = []  # (time.monotonic(), tree CPU seconds)
        self._pids = [root]
        self._last_cpu: dict[int, float] = {}  # every process seen, with its CPU when last seen
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self, refresh: bool) -> None:
        from bench_poll import _tree, _tree_memory_kb

        if refresh:
            self._pids = _tree(self.root)
        rss, pss = _tree_memory_kb(self._pids)
        self.rss_kb, self.pss_kb = max(self.rss_kb, rss), max(self.pss_kb, pss)
        for pid in self._pids:
            cpu = _cpu_seconds(pid)
            if cpu is not None:
                self._last_cpu[pid] = cpu
        # A process that exited keeps the CPU it had when last seen: the sum never goes back.
        self.cpu.append((time.monotonic(), sum(self._last_cpu.values())))

    def _run(self) -> None:
        n = 0
        while not self._stop.wait(SAMPLE_EVERY):
            n += 1
            self._sample(refresh=n % 5 == 0)  # the process list every 0.25 s (it costs more)

    def start(self) -> None:
        self._sample(refresh=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def cpu_at(self, when: float) -> float:
        """Tree CPU at ``when``, interpolated between the samples around it."""
        points = self.cpu
        if not points:
            return 0.0
        if when <= points[0][0]:
            return points[0][1]
        for (t0, c0), (t1, c1) in itertools.pairwise(points):
            if t0 <= when <= t1:
                return c0 + (c1 - c0) * ((when - t0) / (t1 - t0) if t1 > t0 else 0.0)
        return points[-1][1]


@dataclass
class ProcessRun:
    """One measured process: start and exit (monotonic), CPU from wait4, peak memory."""

    started: float
    wall: float
    cpu: float
    rss_mb: float
    pss_mb: float
    returncode: int
    stdout: str
    stderr: str
    sampler: TreeSampler = field(repr=False)


def run_process(argv: list[str], *, cwd: Path) -> ProcessRun:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(":"))
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.monotonic()
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        sampler = TreeSampler(proc.pid)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        ended = time.monotonic()
        sampler.stop()
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
        out.seek(0)
        err.seek(0)
        return ProcessRun(started, ended - started, usage.ru_utime + usage.ru_stime, sampler.rss_kb / 1024,
                          sampler.pss_kb / 1024, proc.returncode, out.read().decode(errors="replace"),
                          err.read().decode(errors="replace"), sampler)


# --------------------------------------------------------------------------- the feed farm

@dataclass
class Farm:
    process: Any
    stop: Any
    manager: Any
    ports: list[int]

    def urls(self, kind: str, feeds: int) -> list[str]:
        """``kind`` 'all' (every item matching) or 'mix' (``--match-share`` matching)."""
        from bench_poll import HOSTS

        return [f"http://127.0.0.{i % HOSTS + 1}:{self.ports[i % HOSTS]}/{kind}/{i}.xml" for i in range(feeds)]

    def close(self) -> None:
        self.stop.set()
        self.process.join(10)
        self.manager.shutdown()


def start_farm(ctx: Any, feeds: int, items: int, latency: float, share: float, outlets: int) -> Farm:
    from bench_poll import serve

    manager = ctx.Manager()
    ports = manager.list()
    ready, stop = ctx.Event(), ctx.Event()
    process = ctx.Process(target=serve, args=(ready, stop, feeds, latency, share, ports, items, outlets),
                          daemon=True)
    process.start()
    if not ready.wait(120):
        raise SystemExit("feed farm did not start")
    return Farm(process, stop, manager, list(ports))


# --------------------------------------------------------------------------- the monitor

_SUMMARY = re.compile(r"(?P<feeds>\d+) feeds polled \((?P<failed>\d+) failed, (?P<not_modified>\d+) not modified"
                      r"(?:, (?P<elsewhere>\d+) being polled by another instance)?\), "
                      r"(?P<items>\d+) items seen \((?P<new_items>\d+) new\), alerts: (?P<alerts>\d+) new")
_DELIVERY = re.compile(r"(?P<messages>\d+) messages delivered \((?P<sent>\d+) alerts\), (?P<failed_attempts>\d+) "
                       r"failed attempts, (?P<dead>\d+) dead, (?P<waiting>\d+) waiting")


def write_monitor_config(directory: Path, urls: list[str], channel: str) -> Path:
    """A user's config: the default rules and settings, one state file, one channel."""
    import yaml

    config = {
        "state_path": str(directory / "state.sqlite3"),
        "rules": [str(ROOT / "rules")],
        "feeds": [{"name": f"feed-{i}", "url": url} for i, url in enumerate(urls)],
        "channels": {CHANNEL_NAME: {"url": channel}},
        "fetch": {"allow_private_addresses": True},  # the farm is on loopback
        "defaults": {"first_poll": "all"},  # a new cycle of dated items, all of them alerting
    }
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


def run_monitor(config: Path, recorder_port: int, tag: str) -> dict[str, Any]:
    """One ``monitor run --once`` process; its figures and what the recorder got from it."""
    run = run_process([sys.executable, "-m", "monitor", "run", "--once", "--config", str(config)], cwd=config.parent)
    if run.returncode:
        raise SystemExit(f"monitor run --once exited {run.returncode}:\n{run.stderr[-3000:]}")
    summary = _SUMMARY.search(run.stdout)
    delivery = _DELIVERY.search(run.stdout)
    if summary is None:
        raise SystemExit(f"no summary line in the output of monitor run --once:\n{run.stdout[-2000:]}")
    figures = {k: int(v) for k, v in summary.groupdict(default="0").items()}
    figures.update({k: int(v) for k, v in delivery.groupdict().items()} if delivery else
                   {"messages": 0, "sent": 0, "failed_attempts": 0, "dead": 0, "waiting": 0})
    arrivals = sorted(received(recorder_port, tag)["arrivals"])
    ended = run.started + run.wall
    result: dict[str, Any] = {
        "system": "monitor", "wall": run.wall, "cpu": run.cpu, "pss_mb": run.pss_mb, "rss_mb": run.rss_mb,
        **figures, "received": len(arrivals),
        "first_message": arrivals[0] - run.started if arrivals else None,
        "last_message": arrivals[-1] - run.started if arrivals else None,
        "after_exit": sum(t > ended for t in arrivals),
    }
    result["complete"] = (result["received"] == figures["messages"] and figures["waiting"] == 0
                          and result["after_exit"] == 0)
    if len(arrivals) >= 2:
        span = arrivals[-1] - arrivals[0]
        result["delivery_per_message"] = span / (len(arrivals) - 1)
        result["delivery_cpu_per_message"] = ((run.sampler.cpu_at(arrivals[-1]) - run.sampler.cpu_at(arrivals[0]))
                                              / (len(arrivals) - 1))
    return result


def deliver_the_rest(run: dict[str, Any], work: Path, urls: list[str], port: int, tag: str) -> None:
    """If ``run`` left rows waiting, ``run --once`` again on its state until none wait (as a
    user of ``--once`` would; each run polls too, all 304), at most MAX_REST_RUNS times.

    Adds ``run["rest"]``: those runs' number, messages and rows still waiting, and
    ``elapsed``, the sum of all the runs' walls, from the first start to the last exit.
    """
    more: list[dict[str, Any]] = []
    waiting = run["waiting"]
    while waiting and len(more) < MAX_REST_RUNS:
        rest_tag = f"{tag}-rest{len(more) + 1}"
        config = write_monitor_config(work, urls, channel_url(port, rest_tag))
        more.append(run_monitor(config, port, rest_tag))
        waiting = more[-1]["waiting"]
    if more:
        run["rest"] = {"runs": len(more), "messages": sum(r["received"] for r in more), "waiting": waiting,
                       "elapsed": run["wall"] + sum(r["wall"] for r in more)}


# --------------------------------------------------------------------------- the peer: lemon24/reader

def reader_cycle(db: str, urls_file: str, add_only: bool) -> dict[str, int]:
    """In its own process: add the feeds (untimed set-up) or poll them all once."""
    from reader import make_reader

    reader = make_reader(db)
    try:
        if add_only:
            for url in Path(urls_file).read_text().split():
                reader.add_feed(url, exist_ok=True)
        else:
            reader.update_feeds(workers=READER_WORKERS, scheduled=False)
        return {"entries": reader.get_entry_counts().total or 0,
                "broken": reader.get_feed_counts(broken=True).total or 0}
    finally:
        reader.close()


def run_reader(directory: Path, *, add_only: bool = False) -> dict[str, Any]:
    argv = [sys.executable, str(Path(__file__).resolve()), "--reader-cycle", str(directory / "reader.sqlite"),
            str(directory / "urls.txt")] + (["--add-only"] if add_only else [])
    run = run_process(argv, cwd=directory)
    if run.returncode:
        raise SystemExit(f"reader exited {run.returncode}:\n{run.stderr[-3000:]}")
    counts = json.loads(run.stdout.strip().splitlines()[-1])
    return {"system": "reader", "wall": run.wall, "cpu": run.cpu, "pss_mb": run.pss_mb, "rss_mb": run.rss_mb,
            "entries": counts["entries"], "failed": counts["broken"]}


# --------------------------------------------------------------------------- history

def seed_history(state_path: Path, n_alerts: int, n_feeds: int, *, now: float | None = None) -> dict[str, int]:
    """Give a fresh state ``n_alerts`` past alerts, each with its story, its item and its sent outbox row.

    Through the monitor's own functions: ``StoryIndex.assign`` (story and story item) and
    the state layer's ``alerts.insert``, ``outbox.enqueue``, ``outbox.mark_sent`` and
    ``items.record`` (the item's "seen" mark). Each
    item's text is a corpus sentence and a random draw of corpus words, so that no two
    fold into one story; the history is spread over HISTORY_DAYS before ``now``.
    Returns the row counts of the tables it filled.
    """
    from bench_poll import _sentences

    from monitor.ingest.pipeline import content_hash
    from monitor.rules import load_rules
    from monitor.state import alerts, items, open_state, outbox
    from monitor.stories.index import StoryIndex
    from monitor.types import Item

    now = time.time() if now is None else now
    rng = random.Random(n_alerts)
    sentences = _sentences()
    words = sorted({w for s in sentences for w in s.split()})
    rule_ids = load_rules([ROOT / "rules"]).rule_ids
    oldest, newest = now - HISTORY_DAYS[1] * 86400, now - HISTORY_DAYS[0] * 86400
    step = (newest - oldest) / max(1, n_alerts)
    conn = open_state(state_path)
    stories = StoryIndex()
    try:
        for start in range(0, n_alerts, SEED_BATCH):
            outbox_ids: list[int] = []
            with conn.transaction():
                for n in range(start, min(n_alerts, start + SEED_BATCH)):
                    at = oldest + n * step
                    link = f"https://history.example/{n}"
                    item = Item(feed=f"feed-{n % n_feeds}", key=f"guid:{link}",
                                title=f"{rng.choice(sentences)[:90]} {n}",
                                summary=" ".join(rng.choices(words, k=40)), link=link, guid=link,
                                published=datetime.fromtimestamp(at, UTC))
                    story = stories.assign(conn, item, at)
                    rule_id = rule_ids[n % len(rule_ids)]
                    payload = alerts.AlertPayload(
                        rule_id=rule_id, rule_title=rule_id, feed=item.feed, title=item.title, summary=item.summary,
                        link=link, guid=link, published=item.published.isoformat() if item.published else None,
                        dedup_reason=story.reason)
                    alert_id = alerts.insert(conn, story_id=story.story_id, rule_id=rule_id, item_key=item.key,
                                             severity="info", payload=payload, now=at)
                    if alert_id is None:
                        raise RuntimeError(f"history item {n} folded into an earlier story")
                    row = outbox.enqueue(conn, alert_id=alert_id, channel=CHANNEL_NAME, kind="alert",
                                         not_before=at, now=at)
                    assert row is not None  # a new alert has no outbox row yet
                    outbox_ids.append(row)
                    items.record(conn, key=item.key, feed=item.feed, content_hash=content_hash(item),
                                 title=item.title, link=link, story_id=story.story_id, rules=[rule_id], now=at)
            outbox.mark_sent(conn, tuple(outbox_ids), at + 1.0)
        return {table: int(conn.scalar(f"SELECT count(*) FROM {table}"))
                for table in ("items", "stories", "story_items", "alerts", "outbox")}
    finally:
        conn.close()


# --------------------------------------------------------------------------- the run

def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median wall time, with the range of walls and the largest memory."""
    ordered = sorted(runs, key=lambda r: float(r["wall"]))
    out = dict(ordered[len(ordered) // 2])
    out["walls"] = [r["wall"] for r in ordered]
    out["pss_mb"] = max(r["pss_mb"] for r in runs)
    out["rss_mb"] = max(r["rss_mb"] for r in runs)
    out["complete"] = all(r.get("complete", True) for r in runs)
    return out


def measure(args: argparse.Namespace) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    farm = start_farm(ctx, args.feeds, args.items, args.latency, args.match_share, args.outlets)
    port_queue, stop = ctx.Queue(), ctx.Event()
    recorder = ctx.Process(target=run_recorder, args=(port_queue, stop), daemon=True)
    recorder.start()
    port = int(port_queue.get(timeout=60))
    rows: dict[str, dict[str, list[dict[str, Any]]]] = {key: {"monitor": [], "reader": []}
                                                         for key in ("all", "304", "mix")}
    history: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench_job.") as tmp_name:
            tmp = Path(tmp_name)
            for repeat in range(args.repeat):  # interleaved: a drifting machine affects both systems alike
                for kind in ("all", "mix"):
                    urls = farm.urls(kind, args.feeds)
                    work = tmp / f"{kind}-{repeat}"
                    work.mkdir()
                    tag = f"{kind}-{repeat}"
                    config = write_monitor_config(work, urls, channel_url(port, tag))
                    new_cycle = run_monitor(config, port, tag)
                    rows[kind]["monitor"].append(new_cycle)
                    if kind == "all":
                        deliver_the_rest(new_cycle, work, urls, port, tag)  # so that (3) is 304s alone
                        config = write_monitor_config(work, urls, channel_url(port, f"304-{repeat}"))
                        rows["304"]["monitor"].append(run_monitor(config, port, f"304-{repeat}"))
                    if args.no_reader:
                        continue
                    (work / "urls.txt").write_text("\n".join(urls))
                    run_reader(work, add_only=True)
                    first = run_reader(work)
                    rows[kind]["reader"].append(first)
                    if kind == "all":
                        second = run_reader(work)
                        second["new_entries"] = second["entries"] - first["entries"]
                        rows["304"]["reader"].append(second)
            for size in args.history:
                work = tmp / f"history-{size}"
                work.mkdir()
                started = time.perf_counter()
                seeded = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--seed-history",
                                         str(work / "state.sqlite3"), str(size), str(args.feeds)],
                                        capture_output=True, text=True, cwd=ROOT, check=False)
                if seeded.returncode:
                    raise SystemExit(f"seeding {size} alerts failed:\n{seeded.stderr[-3000:]}")
                seed_seconds = time.perf_counter() - started
                tag = f"history-{size}"
                config = write_monitor_config(work, farm.urls("all", args.feeds), channel_url(port, tag))
                run = run_monitor(config, port, tag)
                run.update(stored_alerts=size, seeded=json.loads(seeded.stdout.strip().splitlines()[-1]),
                           seed_seconds=seed_seconds)
                history.append(run)
            calibration = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--calibrate-url",
                                          channel_url(port, "calibrate"), "--calibrate", str(args.calibrate)],
                                         capture_output=True, text=True, cwd=ROOT, check=False,
                                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
            if calibration.returncode:
                raise SystemExit(f"channel calibration failed:\n{calibration.stderr[-3000:]}")
            send = json.loads(calibration.stdout.strip().splitlines()[-1])
    finally:
        stop.set()
        recorder.join(10)
        farm.close()
    medians = {key: {system: _median(runs) for system, runs in by_system.items() if runs}
               for key, by_system in rows.items()}
    return {"params": {"feeds": args.feeds, "items": args.items, "latency": args.latency,
                       "match_share": args.match_share, "outlets": args.outlets, "repeat": args.repeat,
                       "cpus": os.cpu_count(),
                       "reader_workers": READER_WORKERS},
            "cycles": medians, "history": history, "channel_send": send, "own_time": own_time(medians, history, send)}


def own_time(cycles: dict[str, dict[str, Any]], history: list[dict[str, Any]],
             send: dict[str, float]) -> list[dict[str, Any]]:
    """The daemon's own wall and CPU time per message in each run that sent 2+ messages."""
    runs = [(f"new cycle, {label}", cycles[key].get("monitor")) for key, label in
            (("all", "all matching"), ("mix", "share matching"))]
    runs += [(f"new cycle, {r['stored_alerts']:,} stored alerts", r) for r in history]
    out = []
    for label, run in runs:
        if run is None or "delivery_per_message" not in run:
            continue
        out.append({"run": label, "messages": run["received"], "gap": run["delivery_per_message"],
                    "own_wall": run["delivery_per_message"] - send["wall"],
                    "gap_cpu": run["delivery_cpu_per_message"],
                    "own_cpu": run["delivery_cpu_per_message"] - send["cpu"]})
    return out


# --------------------------------------------------------------------------- the report

def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _rate(count: float, seconds: float) -> str:
    return f"{count / seconds:,.0f}" if count and seconds else "-"


def _spread(run: dict[str, Any]) -> str:
    walls = run.get("walls", [])
    return f" ({min(walls):.1f}-{max(walls):.1f})" if len(walls) > 1 else ""


def report(result: dict[str, Any]) -> str:
    p, cycles = result["params"], result["cycles"]
    share = f"{p['match_share']:.0%}"
    lines = [
        f"The whole job: `monitor run --once` as a process (start to exit, delivery drained) vs lemon24/reader "
        f"{_reader_version()} ({p['reader_workers']} workers, stores entries only), {p['feeds']:,} loopback feeds "
        f"x {p['items']} new Arabic items (each matching story carried by {p['outlets']} feeds), "
        f"{p['latency'] * 1000:.0f} ms server latency, {p['cpus']} CPUs, "
        f"channel: Apprise json:// to a local recorder. "
        + (f"Median of {p['repeat']} interleaved runs (range of walls)." if p["repeat"] > 1 else "One run each."),
        "",
        ("| cycle | system | wall s | items | items/s | alerts | messages received | messages/s | last message at s "
         "| rows waiting | failed feeds | CPU s | peak PSS MB | peak RSS sum MB |"),
        "|" + "---|" * 14,
    ]
    labels = {"all": "(1) new, all matching", "mix": f"(2) new, {share} matching", "304": "(3) all 304, state of (1)"}
    for key in ("all", "mix", "304"):
        for system in ("monitor", "reader"):
            r = cycles[key].get(system)
            if r is None:
                continue
            if system == "monitor":
                items = r["new_items"]
                extra = (f"{r['alerts']:,} | {r['received']:,}{'' if r['complete'] else ' INCOMPLETE'} | "
                         f"{_rate(r['received'], r['wall'])} | {_s(r['last_message'])} | {r['waiting']} | "
                         f"{r['failed']}")
            else:
                items = r.get("new_entries", r["entries"])
                extra = f"- | - | - | - | - | {r['failed']}"
            lines.append(f"| {labels[key]} | {system} | {r['wall']:.1f}{_spread(r)} | {items:,} | "
                         f"{_rate(items, r['wall'])} | {extra} | {r['cpu']:.1f} | {r['pss_mb']:.0f} | "
                         f"{r['rss_mb']:.0f} |")
            rest = r.get("rest")
            if rest:
                total = r["received"] + rest["messages"]
                lines.append(f"| {labels[key]}, then {rest['runs']} more `run --once` until nothing waits | {system} "
                             f"| {rest['elapsed']:.1f} | {items:,} | {_rate(items, rest['elapsed'])} | {r['alerts']:,} "
                             f"| {total:,} | {_rate(total, rest['elapsed'])} | - | {rest['waiting']} | - | - | - | - |")
    ratios = []
    for key in ("all", "mix", "304"):
        m, rd = cycles[key].get("monitor"), cycles[key].get("reader")
        if m and rd:
            ratios.append(f"{labels[key]}: wall {m['wall'] / rd['wall']:.2f}x, "
                          f"peak PSS {m['pss_mb'] / rd['pss_mb']:.2f}x")
            if m.get("rest"):
                ratios.append(f"{labels[key]} until every message is delivered: "
                              f"{_until_delivered(m) / rd['wall']:.2f}x")
    if ratios:
        lines += ["", "monitor / reader: " + "; ".join(ratios)]
    for key in ("all", "mix", "304"):
        m = cycles[key].get("monitor")
        if m is None:
            continue
        tail = "" if m["last_message"] is None else (
            f" first message at {m['first_message']:.1f} s, last at {m['last_message']:.1f} s, "
            f"exit at {m['wall']:.1f} s")
        extra = m["received"] - m["messages"]
        cut = (f" ({extra} more received than reported: cut in flight by the limit, so sent again, as a possible "
               f"repeat, by the next run)") if extra > 0 else ""
        verdict = ("complete: every message the daemon reports reached the recorder before it exited, none waiting"
                   if m["complete"] else
                   f"INCOMPLETE: the drain stopped at its limit (30 s + 5 s) with {m['waiting']} rows waiting; "
                   f"{m['received']} messages received, {m['messages']} reported sent{cut}, "
                   f"{m['after_exit']} after exit")
        lines.append(f"delivery of {labels[key]}: {verdict};{tail}")

    history = result["history"]
    if history:
        lines += ["", ("Per-item cost as history grows: the new cycle of (1) on a state already holding N sent alerts "
                       "(with their stories, items and outbox rows, 4-29 days old). Per item: start to first message "
                       "over new items; per message: first to last message over the messages after the first."), "",
                  ("| stored alerts | wall s | polling phase s | per item ms | delivery phase s | per message ms "
                   "| messages | peak PSS MB | seeding s |"), "|" + "---|" * 9]
        base = cycles["all"].get("monitor")
        for r in ([dict(base, stored_alerts=0)] if base else []) + history:
            poll = r["first_message"] if r["first_message"] is not None else r["wall"]
            delivery = (r["last_message"] - r["first_message"]) if r["last_message"] is not None else 0.0
            lines.append(f"| {r['stored_alerts']:,} | {r['wall']:.1f} | {poll:.1f} | "
                         f"{1000 * poll / max(1, r['new_items']):.2f} | {delivery:.1f} | "
                         f"{1000 * r.get('delivery_per_message', 0.0):.2f} | {r['received']:,}"
                         f"{'' if r['complete'] else ' INCOMPLETE'} | {r['pss_mb']:.0f} | "
                         f"{_s(r.get('seed_seconds'))} |")
        if len(history) >= 2:
            small, large = history[0], history[-1]
            per_item = [(r["first_message"] or r["wall"]) / max(1, r["new_items"]) for r in (small, large)]
            per_msg = [r.get("delivery_per_message") for r in (small, large)]
            msg_ratio = f"{per_msg[1] / per_msg[0]:.2f}x" if per_msg[0] and per_msg[1] else "-"
            lines.append(f"\n{large['stored_alerts']:,} vs {small['stored_alerts']:,} stored alerts: per item "
                         f"{per_item[1] / per_item[0]:.2f}x, per message {msg_ratio}")

    send = result["channel_send"]
    lines += ["", (f"The daemon's own time per message (see the docstring): one send through the channel alone, "
                   f"measured in the same run, takes {1000 * send['wall']:.2f} ms wall "
                   f"(p90 {1000 * send['wall_p90']:.2f}), {1000 * send['cpu']:.2f} ms CPU."), "",
              ("| run | messages | gap between messages ms | daemon's own wall ms | CPU per message ms "
               "| daemon's own CPU ms |"), "|" + "---|" * 6]
    for o in result["own_time"]:
        lines.append(f"| {o['run'].replace('share', share)} | {o['messages']:,} | {1000 * o['gap']:.2f} | "
                     f"{1000 * o['own_wall']:.2f} | {1000 * o['gap_cpu']:.2f} | {1000 * o['own_cpu']:.2f} |")
    lines += ["", "targets (issue 12): " + "; ".join(targets(result))]
    return "\n".join(lines)


def _until_delivered(run: dict[str, Any]) -> float:
    """Start of the run to the exit of the last ``run --once`` that delivered what it left."""
    rest = run.get("rest")
    return float(rest["elapsed"]) if rest else float(run["wall"])


def targets(result: dict[str, Any]) -> list[str]:
    cycles, out = result["cycles"], []

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "FAIL"

    for key, label in (("all", "all-matching new cycle to its last message faster than reader's new cycle"),
                       ("304", "all-304 no slower than reader's")):
        m, rd = cycles[key].get("monitor"), cycles[key].get("reader")
        if m and rd:
            ratio = _until_delivered(m) / rd["wall"]
            ok = ratio < 1 if key == "all" else ratio <= 1
            out.append(f"{label}: {ratio:.2f}x {verdict(ok and (m['complete'] or bool(m.get('rest'))))}")
    pss = max(r["pss_mb"] for c in cycles.values() for s, r in c.items() if s == "monitor")
    out.append(f"peak PSS of the daemon's tree {pss:.0f} MB < 250 MB: {verdict(pss < 250)}")
    history = result["history"]
    if len(history) >= 2 and history[0].get("delivery_per_message") and history[-1].get("delivery_per_message"):
        small, large = history[0], history[-1]
        item = ((large["first_message"] or large["wall"]) / max(1, large["new_items"])) / \
               ((small["first_message"] or small["wall"]) / max(1, small["new_items"]))
        msg = large["delivery_per_message"] / small["delivery_per_message"]
        out.append(f"per item / per message with {large['stored_alerts']:,} vs {small['stored_alerts']:,} stored "
                   f"alerts {item:.2f}x / {msg:.2f}x < 1.5x: {verdict(item < 1.5 and msg < 1.5)}")
    own = [o["own_wall"] for o in result["own_time"]]
    if own:
        out.append(f"daemon's own time per message {1000 * max(own):.2f} ms (worst run) <= 1 ms: "
                   f"{verdict(max(own) <= 0.001)}")
    return out


def _reader_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("reader")
    except PackageNotFoundError:
        return "(not installed)"


# --------------------------------------------------------------------------- command line

def _history_sizes(text: str) -> list[int]:
    return [int(part) for part in text.replace("_", "").split(",") if part.strip()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--feeds", type=int, default=1000)
    ap.add_argument("--items", type=int, default=20, help="new items per feed")
    ap.add_argument("--latency", type=float, default=0.05, help="simulated server time per response, seconds")
    ap.add_argument("--match-share", type=float, default=0.1, help="share of the items matching in variant (2)")
    ap.add_argument("--outlets", type=int, default=4,
                    help="feeds carrying each matching story (each its own headline): stories = matching items / this")
    ap.add_argument("--history", type=_history_sizes, default=[1000, 100_000],
                    help="stored alerts of the history section, comma-separated ('' skips it)")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each cycle, interleaved; tables show medians")
    ap.add_argument("--calibrate", type=int, default=200, help="sends timed to measure the channel's own time")
    ap.add_argument("--no-reader", action="store_true", help="skip the peer (lemon24/reader)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON instead of tables")
    ap.add_argument("--reader-cycle", nargs=2, metavar=("DB", "URLS"), help=argparse.SUPPRESS)
    ap.add_argument("--add-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--seed-history", nargs=3, metavar=("STATE", "ALERTS", "FEEDS"), help=argparse.SUPPRESS)
    ap.add_argument("--calibrate-url", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.reader_cycle:
        db, urls = args.reader_cycle
        print(json.dumps(reader_cycle(db, urls, add_only=args.add_only)))
        return
    if args.seed_history:
        state, alerts, feeds = args.seed_history
        print(json.dumps(seed_history(Path(state), int(alerts), int(feeds))))
        return
    if args.calibrate_url:
        print(json.dumps(calibrate_channel(args.calibrate_url, args.calibrate)))
        return
    result = measure(args)
    print(json.dumps(result, indent=1, default=str) if args.json else report(result))


if __name__ == "__main__":
    main()
