"""Benchmark: one daemon instance against two on one PostgreSQL, and SQLite against PostgreSQL.

    PYTHONPATH=. .venv/bin/python bench/bench_instances.py [--feeds 400] [--items 20] [--latency 0.05]
        [--repeat 2] [--json]

Each case polls the same loopback farm (``bench_poll``'s, every item matching
the default rules, as ``bench_job``'s case 1) on a fresh state and delivers
every message to the same recording webhook (``bench_job``'s recorder), with
the real command as processes, ``python -m monitor run --once``:

* ``sqlite x1``: one process on a SQLite file (the embedded default);
* ``postgresql x1``: one process on a PostgreSQL database;
* ``postgresql x2``: two processes on one PostgreSQL database, started
  together: they split the feeds through the feed leases (each polls what the
  other has not leased) and one of them delivers the channel (its lease).

Figures: wall time from the first start to the last exit, new items per
second over that wall, messages delivered (each must arrive exactly once:
the recorder counts them), and the delivery bookkeeping per message: the time
between the first and the last message over the messages in between (the
channel answers at once, so that is the daemon's claim, render, send call and
mark). The PostgreSQL server is the test suite's (``tests/pgserver.py``):
initdb into a temporary folder, on loopback, fsync off, as any local test
server; so PostgreSQL figures are a lower bound of what a networked, durable
server costs. Rows are the medians of ``--repeat`` interleaved runs.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE), str(ROOT / "tests")]

from bench_job import _DELIVERY, _SUMMARY, received, run_recorder, start_farm

CHANNEL = "bench"


def write_config(directory: Path, state: str, urls: list[str], channel: str) -> Path:
    import yaml

    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump({
        "state": state, "rules": [str(ROOT / "rules")],
        "feeds": [{"name": f"feed-{i}", "url": url} for i, url in enumerate(urls)],
        "channels": {CHANNEL: {"url": channel}},
        "fetch": {"allow_private_addresses": True},
        "defaults": {"first_poll": "all"},  # a new cycle: every dated item alerts
        "log_level": "WARNING",
    }, allow_unicode=True), encoding="utf-8")
    return path


def run_instances(configs: list[Path]) -> dict[str, Any]:
    """Start one ``run --once`` per config at the same moment; wait for all of them."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    started = time.monotonic()
    procs = [subprocess.Popen([sys.executable, "-m", "monitor", "run", "--once", "--config", str(c)], cwd=ROOT,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in configs]
    outputs = []
    cpu = 0.0
    for proc in procs:
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out, err = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
        if proc.returncode:
            raise SystemExit(f"monitor run --once exited {proc.returncode}:\n{err[-3000:]}")
        outputs.append(out)
        cpu += usage.ru_utime + usage.ru_stime
    wall = time.monotonic() - started
    totals: dict[str, int] = {}
    polled = []
    for out in outputs:
        summary, delivery = _SUMMARY.search(out), _DELIVERY.search(out)
        if summary is None:
            raise SystemExit(f"no summary line:\n{out[-2000:]}")
        figures = {k: int(v) for k, v in summary.groupdict(default="0").items()}
        figures.update({k: int(v) for k, v in delivery.groupdict().items()} if delivery else {})
        polled.append(figures["new_items"])
        for key, value in figures.items():
            totals[key] = totals.get(key, 0) + value
    return {"started": started, "wall": wall, "cpu": cpu, "new_items": totals.get("new_items", 0),
            "messages": totals.get("messages", 0), "waiting": totals.get("waiting", 0), "new_items_each": polled}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from pgserver import PostgresServer, find_binaries

    binaries = find_binaries()
    if binaries is None:
        raise SystemExit("PostgreSQL server binaries not found (Debian package postgresql)")
    ctx = multiprocessing.get_context("spawn")
    farm = start_farm(ctx, args.feeds, args.items, args.latency, 1.0, 4)
    port_queue, stop = ctx.Queue(), ctx.Event()
    recorder = ctx.Process(target=run_recorder, args=(port_queue, stop), daemon=True)
    recorder.start()
    port = int(port_queue.get(timeout=60))
    server = PostgresServer(binaries).start()
    rows: dict[str, list[dict[str, Any]]] = {"sqlite x1": [], "postgresql x1": [], "postgresql x2": []}
    try:
        with tempfile.TemporaryDirectory(prefix="bench_instances.") as tmp_name:
            tmp = Path(tmp_name)
            urls = farm.urls("all", args.feeds)
            for repeat in range(args.repeat):
                for case in rows:
                    tag = f"{case.replace(' ', '-')}-{repeat}"
                    work = tmp / tag
                    work.mkdir()
                    channel = f"json://127.0.0.1:{port}/{tag}"
                    if case.startswith("sqlite"):
                        state = str(work / "state.sqlite3")
                    else:
                        state = server.create_database(tag.replace("-", "_").replace(".", "_"))
                    n = 2 if case.endswith("x2") else 1
                    configs = []
                    for i in range(n):
                        (work / str(i)).mkdir()
                        configs.append(write_config(work / str(i), state, urls, channel))
                    run = run_instances(configs)
                    arrivals = sorted(received(port, tag)["arrivals"])
                    run["received"] = len(arrivals)
                    run["distinct_ok"] = len(arrivals) == run["messages"]
                    if len(arrivals) >= 2:
                        run["per_message_ms"] = 1000 * (arrivals[-1] - arrivals[0]) / (len(arrivals) - 1)
                    rows[case].append(run)
    finally:
        server.stop()
        stop.set()
        recorder.join(10)
        farm.close()
    medians = {}
    for case, runs in rows.items():
        ordered = sorted(runs, key=lambda r: r["wall"])
        median = dict(ordered[len(ordered) // 2])
        median["walls"] = [round(r["wall"], 2) for r in ordered]
        per = [r["per_message_ms"] for r in runs if "per_message_ms" in r]
        median["per_message_ms"] = statistics.median(per) if per else None
        medians[case] = median
    return {"params": vars(args) | {"cpus": len(os.sched_getaffinity(0))}, "cases": medians}


def report(result: dict[str, Any]) -> str:
    p = result["params"]
    lines = [f"{p['feeds']} feeds x {p['items']} new items, all matching, {p['latency'] * 1000:.0f} ms latency, "
             f"{p['cpus']} CPUs, medians of {p['repeat']} runs", "",
             "| case | wall (runs) | new items/s | messages received / reported | delivery per message | "
             "CPU s | new items per instance |", "|---|---|---|---|---|---|---|"]
    base = result["cases"]["sqlite x1"]["wall"]
    for case, r in result["cases"].items():
        per = f"{r['per_message_ms']:.2f} ms" if r.get("per_message_ms") is not None else "-"
        lines.append(f"| {case} | {r['wall']:.1f} s ({', '.join(map(str, r['walls']))}) | "
                     f"{r['new_items'] / r['wall']:,.0f} | {r['received']} / {r['messages']} | {per} | "
                     f"{r['cpu']:.1f} | {', '.join(map(str, r['new_items_each']))} |")
    lines += ["", "ratios (wall): " + ", ".join(f"{case} {base / r['wall']:.2f}x of sqlite x1"
                                              for case, r in result["cases"].items() if case != "sqlite x1")]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=400)
    parser.add_argument("--items", type=int, default=20)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = measure(args)
    print(json.dumps(result, indent=2) if args.json else report(result))


if __name__ == "__main__":
    main()
