"""Story dedup through the real daemon on the generated evaluation set (issue 13), and its cost.

    python bench/bench_dedup_eval.py [--split dev|heldout|both] [--seed 13[,1,2...]] [--stored 100000]
                                     [--orders originals_first,copies_first,shuffled] [--json]
                                     [--baseline REVISION] [--real-news PATH] [--keep DIR]

Quality: for each split and each arrival order, the generated items are served as six loopback
RSS feeds (one per outlet, ``http.server`` on 127.0.0.1), and one ``python -m monitor run --once``
process polls them with a config holding one catch-all rule (dedup folds only matched items), a
``console://`` channel (its output goes to a file) and ``defaults.concurrency: 1``, so the feeds
are processed one after another in config order and the arrival order is the one asked for:

* ``originals_first``: the outlets in their order, which puts every original before its copies
  (see ``dedup_eval.generate``);
* ``copies_first``: the outlets and their items reversed, every copy before its original;
* ``shuffled``: outlets and items in a seeded random order.

Then the story each item joined is read from the state database (``story_memberships``, the one
place that knows the schema) and scored: pair recall over the duplicate pairs, false-merge rate
over the distinct pairs, per kind, and the messages delivered (``monitor alerts --json``) against
the number of true clusters. The realised arrival order is checked against the intended one.
With ``--baseline main`` the daemon of that git revision (its ``monitor`` package, from ``git
archive``) runs the same sets and orders in the same run: before and after side by side. Each
split has only ~10 long clusters, so one seed's figures move by about ±0.1 recall from seed to
seed: compare methods on several seeds (``--seed 13,1,2,3``: per seed, then pooled).

Cost: a micro-benchmark of each method in ``dedup_eval.methods`` (the whole-text MinHash from
before issue 13, frozen in ``dedup_eval.baseline``, and today's): per-item key time, then with
``--stored`` stories stored in a real state database, the candidate query alone and the whole
assignment (one write transaction per feed, as the daemon), with ratios against the first method
measured in the same run. The methods run one after another.

The cost table alone (no daemon runs): ``--split dev --orders ""``.

Targets (issue 13): recall >= 0.95, false merges <= 1 %, in every order, on ``heldout``;
per-item cost <= 2x today's. Tune on ``dev`` only.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from dedup_eval.generate import (
    DEFAULT_SEED,
    DISTINCT_PAIR_KINDS,
    DUPLICATE_PAIR_KINDS,
    EvalItem,
    EvalSet,
    Outlet,
    SourceError,
    feed_xml,
    generate,
    iter_splits,
)
from dedup_eval.methods import METHODS, DedupMethod
from dedup_eval.score import Score, pool, score

from monitor.types import Item

ORDERS = ("originals_first", "copies_first", "shuffled")
CATCH_ALL_RULES = {
    "keywords": [{"id": "any_word", "description": "function words every Arabic article has",
                  "words": ["في", "من", "على", "إلى", "عن", "أن"]}],
    "rules": [{"id": "catch_all", "title": "every item", "any": ["any_word"]}],
}


# --------------------------------------------------------------------------- feeds on loopback

class FeedServer:
    """A threaded HTTP server on 127.0.0.1 answering GET <path> with fixed RSS bytes."""

    def __init__(self) -> None:
        self._routes: dict[str, bytes] = {}
        routes = self._routes

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                body = routes.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def serve(self, path: str, body: bytes) -> str:
        self._routes[path] = body
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"


# --------------------------------------------------------------------------- one daemon run

def arrange(eval_set: EvalSet, order: str, seed: int) -> list[tuple[Outlet, list[EvalItem]]]:
    """The outlets in polling order, each with its items in feed order, for ``order``."""
    feeds = [(outlet, eval_set.outlet_items(outlet)) for outlet in eval_set.outlets]
    if order == "originals_first":
        return feeds
    if order == "copies_first":
        return [(outlet, items[::-1]) for outlet, items in reversed(feeds)]
    if order == "shuffled":
        rng = random.Random(f"arrival:{seed}:{eval_set.split}")
        rng.shuffle(feeds)
        for _, items in feeds:
            rng.shuffle(items)
        return feeds
    raise ValueError(f"unknown order {order!r} (one of {', '.join(ORDERS)})")


def story_memberships(state_path: Path) -> list[tuple[str, int]]:
    """(item key, story id) of every item folded into a story, in the order they were folded.

    The one function here that knows the state schema (today the ``story_items`` table of the
    SQLite file at the config's ``state_path``); it moves with the state layer."""
    conn = sqlite3.connect(f"file:{state_path}?mode=ro", uri=True)
    try:
        return [(str(key), int(story)) for key, story in
                conn.execute("SELECT item_key, story_id FROM story_items ORDER BY rowid")]
    finally:
        conn.close()


def _monitor(*args: str, root: Path = ROOT, stdout: Any = subprocess.PIPE, timeout: float = 600
             ) -> subprocess.CompletedProcess[str]:
    """``python -m monitor ARGS`` with the ``monitor`` package of ``root`` (this checkout by default)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, "-m", "monitor", *args], stdout=stdout, stderr=subprocess.PIPE,
                          text=True, env=env, cwd=root, timeout=timeout, check=False)


@dataclass(frozen=True)
class Code:
    """Which ``monitor`` package the daemon runs: this checkout, or a git revision of it
    (``--baseline``), extracted with ``git archive`` so both run in one bench run."""

    label: str
    root: Path


def extract_revision(revision: str, into: Path) -> Code:
    """The ``monitor`` package of ``revision`` (a commit, branch or tag of this repository) under ``into``."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", revision, "monitor"],
                             capture_output=True, check=False)
    if archive.returncode:
        raise SystemExit(f"error: --baseline {revision}: {archive.stderr.decode(errors='replace').strip()}")
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    described = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", revision], capture_output=True,
                               text=True, check=False).stdout.strip()
    return Code(f"{revision} ({described})" if described and described != revision else revision, into)


def delivered_messages(config: Path, limit: int, root: Path = ROOT) -> int:
    """Messages the channels sent, from ``monitor alerts --json``."""
    result = _monitor("alerts", "--config", str(config), "--json", "--limit", str(limit), root=root)
    if result.returncode:
        raise RuntimeError(f"monitor alerts failed ({result.returncode}): {result.stderr.strip()}")
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return sum(d.get("state") == "sent" for row in rows for d in row.get("deliveries", []))


@dataclass(frozen=True)
class OrderResult:
    code: str
    seed: int
    split: str
    order: str
    score: Score
    messages: int
    wall_seconds: float
    cpu_seconds: float  # of the ``run --once`` process (user + system)
    order_checked: bool


def _knows_first_poll(code: Code) -> bool:
    settings = code.root / "monitor" / "feeds" / "settings.py"
    return settings.exists() and "first_poll" in settings.read_text(encoding="utf-8")


def run_order(eval_set: EvalSet, order: str, server: FeedServer, workdir: Path, code: Code) -> OrderResult:
    """One ``monitor run --once`` of ``code`` over the set in ``order``; raises if the daemon failed."""
    folder = workdir / code.root.name / f"seed{eval_set.seed}" / eval_set.split / order
    folder.mkdir(parents=True)
    feeds = arrange(eval_set, order, eval_set.seed)
    (folder / "rules.yaml").write_text(yaml.safe_dump(CATCH_ALL_RULES, allow_unicode=True), encoding="utf-8")
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump({
        "state_path": str(folder / "state.sqlite3"),
        "rules": [str(folder / "rules.yaml")],
        "log_level": "WARNING",
        # One feed at a time, in config order (the arrival order under test); every dated item
        # alerts on the first poll (a revision that predates first_poll alerts for all of them anyway).
        "defaults": {"concurrency": 1, **({"first_poll": "all"} if _knows_first_poll(code) else {})},
        "feeds": [{"name": outlet.feed,
                   "url": server.serve(f"/{code.root.name}/{eval_set.seed}/{eval_set.split}/{order}/{outlet.feed}.xml",
                                       feed_xml(outlet, items))}
                  for outlet, items in feeds],
        "channels": {"console": {"url": "console://"}},
        "fetch": {"allow_private_addresses": True},  # the outlets are on loopback
    }, allow_unicode=True), encoding="utf-8")
    started, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(folder / "console.txt", "w", encoding="utf-8") as console:
        result = _monitor("run", "--once", "--config", str(config), root=code.root, stdout=console)
    wall, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    if result.returncode:
        raise RuntimeError(f"monitor run --once failed ({result.returncode}) in {folder}: {result.stderr.strip()}")
    memberships = story_memberships(folder / "state.sqlite3")
    story_of = {key.removeprefix("guid:"): story for key, story in memberships}
    intended = [item.guid for _, items in feeds for item in items]
    realised = [key.removeprefix("guid:") for key, _ in memberships]
    messages = delivered_messages(config, limit=len(eval_set.items) * 4, root=code.root)
    return OrderResult(code.label, eval_set.seed, eval_set.split, order, score(eval_set, story_of), messages, wall,
                       cpu, realised == intended)


# --------------------------------------------------------------------------- micro-benchmark

def _rss_mb() -> float:
    """This process's resident memory (Linux /proc), MB."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


SYNTHETIC_OUTLETS = 300


def synthetic_items(count: int, sets: Sequence[EvalSet], seed: int) -> Iterator[Item]:
    """``count`` stored stories, the same for every method: 40-300 random words of the sets'
    vocabulary under the furniture of their outlet, as a window of many feeds holds. One in ten is
    on one of the sets' outlets (their real furniture, a third of them briefs under the site footer);
    the others on one of 300 outlets whose furniture is a fixed run of random words. One in ten
    carries a stock background sentence of the sets."""
    rng = random.Random(f"stored:{seed}")
    vocabulary = [w for eval_set in sets for item in eval_set.items for w in item.text.split()]
    outlets = [outlet for eval_set in sets for outlet in eval_set.outlets]
    stock = [s for eval_set in sets for s in eval_set.stock]
    invented = [" ".join(rng.choices(vocabulary, k=rng.randint(10, 60))) for _ in range(SYNTHETIC_OUTLETS)]
    published = datetime(2017, 11, 1, tzinfo=UTC)
    for n in range(count):
        if rng.random() < 0.1:
            outlet = rng.choice(outlets)
            brief = rng.random() < 1 / 3
            body = rng.choices(vocabulary, k=rng.randint(40, 60) if brief else rng.randint(40, 300))
            furniture = [outlet.footer] if brief else outlet.standing_furniture()
            feed = outlet.feed
        else:
            site = rng.randrange(SYNTHETIC_OUTLETS)
            body = rng.choices(vocabulary, k=rng.randint(40, 300))
            furniture, feed = [invented[site]], f"stored{site}"
        background = [rng.choice(stock)] if rng.random() < 0.1 else []
        yield Item(feed=feed, key=f"guid:stored/{n}", title=" ".join(body[:8]),
                   summary=" ".join([" ".join(body[8:]), *background, *furniture]),
                   link=f"https://stored.example/{n}", guid=f"stored/{n}", published=published)


def eval_items(eval_set: EvalSet) -> list[Item]:
    """The set's items as the daemon sees them: each outlet's feed through the real parser."""
    from monitor.feeds.parse import parse_feed

    return [item for outlet in eval_set.outlets
            for item in parse_feed(feed_xml(outlet, eval_set.outlet_items(outlet)), {}, url=f"https://{outlet.host}/",
                                   feed_name=outlet.feed).items]


def _median_us(samples: list[float]) -> float:
    return statistics.median(samples) * 1e6 if samples else 0.0


@contextmanager
def _phase() -> Iterator[None]:
    gc.collect()
    yield
    gc.collect()


def micro_benchmark(methods: Sequence[DedupMethod], sets: Sequence[EvalSet], stored: int, seed: int, workdir: Path,
                    repeats: int = 3) -> list[dict[str, float]]:
    """Per-item costs of each method on the sets' items with ``stored`` stories already stored:
    the key, the candidate query alone, and the whole assignment (one transaction per feed).

    The machine is shared and its speed drifts: the methods take turns item by item (keys,
    queries, ``repeats`` times each) and feed by feed (assignments), so that a slow spell
    slows all of them, and the figures are medians.
    """
    items = [item for eval_set in sets for item in eval_items(eval_set)]
    batches = [[item for item in items if item.feed == feed] for feed in dict.fromkeys(item.feed for item in items)]
    items = [item for batch in batches for item in batch]
    key_times: list[list[float]] = [[] for _ in methods]
    keys: list[list[Any]] = [[] for _ in methods]
    for _ in range(repeats):
        keys = [[] for _ in methods]
        for batch in batches:  # the keys of one poll's items, as a worker computes them
            for n, method in enumerate(methods):
                started = time.perf_counter()
                keys[n] += method.keys(batch)
                key_times[n] += [(time.perf_counter() - started) / len(batch)] * len(batch)

    stores, fills, rss, disks = [], [], [], []
    for method in methods:
        with _phase():
            folder = workdir / f"micro-{len(os.listdir(workdir))}"
            folder.mkdir()
            rss_before = _rss_mb()
            started = time.perf_counter()
            store = method.story_store(folder)
            store.add((s, method.key(s)) for s in synthetic_items(stored, sets, seed))
            fills.append(time.perf_counter() - started)
            rss.append(_rss_mb() - rss_before)
            disks.append(sum(f.stat().st_size for f in folder.iterdir()))
            stores.append(store)

    query_times: list[list[float]] = [[] for _ in methods]
    found: list[list[int]] = [[] for _ in methods]
    for _ in range(repeats):
        for i in range(len(items)):
            for n, store in enumerate(stores):
                started = time.perf_counter()
                candidates = store.candidates(keys[n][i])
                query_times[n].append(time.perf_counter() - started)
                found[n].append(len(candidates))

    assign_times: list[list[float]] = [[] for _ in methods]
    polls = [0.0 for _ in methods]
    for feed in dict.fromkeys(item.feed for item in items):  # one write transaction per feed, as the daemon
        for n, store in enumerate(stores):
            poll_started = time.perf_counter()
            with store.batch():
                for item, key in zip(items, keys[n], strict=True):
                    if item.feed == feed:
                        started = time.perf_counter()
                        store.assign(item, key)
                        assign_times[n].append(time.perf_counter() - started)
            polls[n] += time.perf_counter() - poll_started
    for store in stores:
        store.close()
    return [{
        "key_us": _median_us(key_times[n]), "query_us": _median_us(query_times[n]),
        "candidates": statistics.mean(found[n]) if found[n] else 0.0, "assign_us": _median_us(assign_times[n]),
        "per_item_us": _median_us(key_times[n]) + _median_us(assign_times[n]),
        "poll_us_per_item": polls[n] / len(items) * 1e6 if items else 0.0,
        "fill_us_per_story": fills[n] / stored * 1e6 if stored else 0.0,
        "store_rss_mb": rss[n], "disk_mb": disks[n] / 1e6,
    } for n in range(len(methods))]


# --------------------------------------------------------------------------- report

def _pct(tally_rate: float) -> str:
    return f"{tally_rate * 100:.1f} %"


def _quality_row(label: str, s: Score, messages: int, extra: str) -> str:
    return (f"| {label} | {s.recall:.3f} ({s.duplicates.hits}/{s.duplicates.pairs}) "
            f"| {_pct(s.false_merge_rate)} ({s.distinct.hits}/{s.distinct.pairs}) "
            f"| {_pct(s.all_distinct.rate)} ({s.all_distinct.hits}/{s.all_distinct.pairs}) "
            f"| {messages} / {s.clusters} | {f'{len(s.unassigned)} UNASSIGNED' if s.unassigned else 'all'} | {extra} |")


def _pooled(results: Sequence[OrderResult]) -> list[tuple[str, list[OrderResult]]]:
    """(code split order, results of every seed), in the order first met."""
    groups: dict[tuple[str, str, str], list[OrderResult]] = {}
    for r in results:
        groups.setdefault((r.code, r.split, r.order), []).append(r)
    return [(" ".join(label), found) for label, found in groups.items()]


def quality_table(results: Sequence[OrderResult]) -> str:
    lines = [("| code seed split order | recall (duplicate pairs) | false merges (distinct pairs) "
              "| false merges (all cross-cluster pairs) | messages / true clusters | items folded "
              "| run --once wall s, CPU s, order as intended (pooled rows: range over the seeds) |"),
             "|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(_quality_row(f"{r.code} {r.seed} {r.split} {r.order}", r.score, r.messages,
                                  f"{r.wall_seconds:.1f}, {r.cpu_seconds:.2f}, {'yes' if r.order_checked else 'NO'}"))
    if len({r.seed for r in results}) > 1:
        for label, found in _pooled(results):
            recalls = [r.score.recall for r in found]
            merges = [r.score.false_merge_rate for r in found]
            lines.append(_quality_row(f"**{len(found)} seeds** {label}", pool([r.score for r in found]),
                                      sum(r.messages for r in found),
                                      f"recall {min(recalls):.3f}-{max(recalls):.3f}, "
                                      f"false merges {_pct(min(merges))}-{_pct(max(merges))}"))
    codes = list(dict.fromkeys(r.code for r in results))
    if len(codes) > 1:
        cpu = {code: statistics.median(r.cpu_seconds for r in results if r.code == code) for code in codes}
        lines.append("")
        lines.append("CPU of one `run --once` (median over the runs above): " + ", ".join(
            f"{code} {seconds:.2f} s ({seconds / cpu[codes[0]]:.2f}x)" for code, seconds in cpu.items()))
    return "\n".join(lines)


def kind_table(results: Sequence[OrderResult], duplicates: bool) -> str:
    """Per pair kind, for each split and order (all seeds pooled)."""
    kinds = DUPLICATE_PAIR_KINDS if duplicates else DISTINCT_PAIR_KINDS
    what = "recall of duplicate pairs" if duplicates else "false merges of distinct pairs"
    columns = [(label, pool([r.score for r in found])) for label, found in _pooled(results)]
    lines = [f"| {what} | " + " | ".join(label for label, _ in columns) + " |", "|---|" + "---|" * len(columns)]
    for kind in kinds:
        cells = []
        for _, pooled in columns:
            tally = (pooled.duplicates_by_kind if duplicates else pooled.distinct_by_kind).get(kind)
            cells.append("-" if tally is None else
                         (f"{tally.rate:.2f}" if duplicates else _pct(tally.rate)) + f" ({tally.hits}/{tally.pairs})")
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def micro_table(rows: Sequence[tuple[str, dict[str, float]]], stored: int) -> str:
    base = rows[0][1]
    lines = [(f"| method ({stored:,} stored stories) | key / item | candidate query (ratio) | candidates / query "
              "| assign / item | key + assign (ratio) | assign + commit / item | fill / story | RSS of the store "
              "| state file |"),
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, m in rows:
        per_item = m["per_item_us"] / base["per_item_us"] if base["per_item_us"] else 0.0
        query = m["query_us"] / base["query_us"] if base["query_us"] else 0.0
        lines.append(f"| {name} | {m['key_us']:,.0f} µs | {m['query_us']:,.1f} µs ({query:.1f}x) "
                     f"| {m['candidates']:.2f} | {m['assign_us']:,.0f} µs "
                     f"| {m['per_item_us']:,.0f} µs ({per_item:.2f}x) | {m['poll_us_per_item']:,.0f} µs "
                     f"| {m['fill_us_per_story']:,.0f} µs | {m['store_rss_mb']:,.0f} MB | {m['disk_mb']:,.0f} MB |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--split", choices=("dev", "heldout", "both"), default="both")
    parser.add_argument("--seed", default=str(DEFAULT_SEED),
                        help="generator seed, or several separated by commas (figures per seed and pooled)")
    parser.add_argument("--orders", default=",".join(ORDERS), help="comma-separated, from: " + ", ".join(ORDERS))
    parser.add_argument("--stored", type=int, default=100_000,
                        help="stories stored for the micro-benchmark (0: skip it)")
    parser.add_argument("--real-news", type=Path,
                        help="real-news dev.jsonl (default: $MONITOR_REAL_NEWS or ../shared/...)")
    parser.add_argument("--keep", type=Path, help="keep configs, state databases and console output here")
    parser.add_argument("--baseline", metavar="REVISION",
                        help="also run the daemon of this git revision (e.g. main) in the same run, for before/after")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON document")
    args = parser.parse_args(argv)
    orders = [o.strip() for o in args.orders.split(",") if o.strip()]
    for order in orders:
        if order not in ORDERS:
            parser.error(f"unknown order {order!r} (one of {', '.join(ORDERS)})")
    try:
        args.seeds = [int(seed) for seed in args.seed.split(",") if seed.strip()]
    except ValueError:
        parser.error(f"--seed: expected integers separated by commas, got {args.seed!r}")
    try:
        sets = [generate(seed, split, real_news=args.real_news)
                for seed in args.seeds for split in iter_splits(args.split)]
    except SourceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="bench-dedup-eval-") as scratch:
        workdir = args.keep or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        results, micro = _measure(sets, orders, args, workdir)
    report(results, micro, args)
    return 0 if all(r.order_checked and not r.score.unassigned for r in results) else 1


def _measure(sets: Sequence[EvalSet], orders: Sequence[str], args: argparse.Namespace, workdir: Path
             ) -> tuple[list[OrderResult], list[tuple[str, dict[str, float]]]]:
    results: list[OrderResult] = []
    codes = [Code("this checkout", ROOT)]
    if args.baseline:
        codes.insert(0, extract_revision(args.baseline, workdir / "baseline"))
    with FeedServer() as server:
        for code in codes:
            for eval_set in sets:
                for order in orders:
                    results.append(run_order(eval_set, order, server, workdir, code))
                    if not args.json:
                        print(f"{code.label} seed {eval_set.seed} {eval_set.split} {order}: "
                              f"recall {results[-1].score.recall:.3f}, "
                              f"false merges {_pct(results[-1].score.false_merge_rate)}", file=sys.stderr, flush=True)

    micro: list[tuple[str, dict[str, float]]] = []
    if args.stored:
        methods = [factory() for factory in METHODS]
        first_seed = [eval_set for eval_set in sets if eval_set.seed == args.seeds[0]]
        figures = micro_benchmark(methods, first_seed, args.stored, args.seeds[0], workdir)
        micro = [(method.name, m) for method, m in zip(methods, figures, strict=True)]
    return results, micro


def report(results: Sequence[OrderResult], micro: Sequence[tuple[str, dict[str, float]]], args: argparse.Namespace
           ) -> None:
    if args.json:
        print(json.dumps({
            "seeds": args.seeds,
            "quality": [{"code": r.code, "seed": r.seed, "split": r.split, "order": r.order, "recall": r.score.recall,
                         "false_merge_rate": r.score.false_merge_rate,
                         "all_cross_false_merge_rate": r.score.all_distinct.rate,
                         "duplicate_pairs": r.score.duplicates.pairs, "distinct_pairs": r.score.distinct.pairs,
                         "duplicates_by_kind": {k: [t.hits, t.pairs] for k, t in r.score.duplicates_by_kind.items()},
                         "distinct_by_kind": {k: [t.hits, t.pairs] for k, t in r.score.distinct_by_kind.items()},
                         "messages": r.messages, "clusters": r.score.clusters, "stories": r.score.stories,
                         "unassigned": len(r.score.unassigned), "run_once_seconds": r.wall_seconds,
                         "run_once_cpu_seconds": r.cpu_seconds,
                         "order_as_intended": r.order_checked} for r in results],
            "micro": {"stored": args.stored, "methods": [{"name": n, **m} for n, m in micro]},
        }, ensure_ascii=False, indent=1))
    else:
        if results:
            print(f"\nseeds {', '.join(map(str, args.seeds))}; "
                  "the kinds are explained in bench/dedup_eval/generate.py\n")
            print(quality_table(results))
            print()
            print(kind_table(results, duplicates=True))
            print()
            print(kind_table(results, duplicates=False))
        if micro:
            print()
            print(micro_table(micro, args.stored))


if __name__ == "__main__":
    sys.exit(main())
