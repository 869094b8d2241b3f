"""What the feed lease costs as the number of feeds grows, on SQLite and on PostgreSQL.

    PYTHONPATH=. .venv/bin/python bench/bench_leases.py [--feeds 1000,10000,100000] [--sample 2000]

Why: with several instances every poll starts by taking its feed's lease
(``state.feeds.take_lease``: one conditional UPDATE on the feed's row, by its
primary key), so this is the per-poll cost of sharing the feeds. The bench
fills a fresh state with N feeds through the same function, then times
``--sample`` lease takes on feeds picked at random (each a transaction of its
own, as in the daemon), for N in ``--feeds``. A PostgreSQL 15 server is
started for the run (Debian's package; skipped with a note when missing).
The figure to read is how the cost changes with N, and the polls per second
one connection can lease: at 100,000 feeds polled every 10 minutes the
cluster needs about 170 leases a second.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from monitor.state import Database, open_state
from monitor.state import feeds as state_feeds

WARM_UP = 200


def fill(db: Database, n: int, start: int) -> None:
    for i in range(start, n):
        state_feeds.take_lease(db, f"feed-{i}", f"https://news{i % 97}.example/feed/{i}.xml", owner="filler",
                               now=0.0, seconds=1.0, when_due=False)


def time_leases(db: Database, n: int, sample: int, rng: random.Random) -> float:
    """Mean microseconds per lease take on random feeds of the ``n`` stored."""
    names = [f"feed-{rng.randrange(n)}" for _ in range(sample + WARM_UP)]
    now = 1_000.0
    for i, name in enumerate(names):
        if i == WARM_UP:  # the first takes warm the connection's statement cache and the pages
            started = time.perf_counter()
        now += 1.0
        state_feeds.take_lease(db, name, "https://x.example/", owner="bench", now=now, seconds=60.0, when_due=False)
    return (time.perf_counter() - started) / sample * 1e6


def measure(db: Database, sizes: list[int], sample: int) -> list[tuple[int, float, float]]:
    rows = []
    rng = random.Random(7)
    stored = 0
    for n in sizes:
        started = time.perf_counter()
        fill(db, n, stored)
        filled = time.perf_counter() - started
        stored = n
        rows.append((n, time_leases(db, n, sample, rng), filled))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--feeds", default="1000,10000,100000")
    ap.add_argument("--sample", type=int, default=2000)
    args = ap.parse_args()
    sizes = sorted(int(x) for x in args.feeds.split(","))
    results: dict[str, list[tuple[int, float, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench_leases.") as tmp:
        db = open_state(Path(tmp) / "state.sqlite3")
        results["SQLite"] = measure(db, sizes, args.sample)
        db.close()
    from pgserver import PostgresServer, find_binaries

    binaries = find_binaries()
    if binaries is None:
        print("note: PostgreSQL server binaries not found (Debian package postgresql): SQLite only")
    else:
        server = PostgresServer(binaries).start()
        try:
            db = open_state(server.create_database("bench_leases"))
            results["PostgreSQL"] = measure(db, sizes, args.sample)
            db.close()
        finally:
            server.stop()
    print(f"feed lease take (one transaction each), {args.sample} random feeds per size\n")
    print("| backend | feeds stored | µs per lease | leases/s on one connection | vs smallest | fill s |")
    print("|---|---|---|---|---|---|")
    for backend, rows in results.items():
        base = rows[0][1]
        for n, micros, filled in rows:
            print(f"| {backend} | {n:,} | {micros:.0f} | {1e6 / micros:,.0f} | {micros / base:.2f}x | {filled:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
