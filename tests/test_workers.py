"""WorkerPool: feeds parsed in worker processes, a crashed worker replaced, the loop never blocked."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from feedfarm import ARABIC_ITEMS, _text_amplification, rss

from monitor.errors import ParseError
from monitor.feeds.parse import parse_feed
from monitor.ingest.workers import WorkerPool, _analyze_in_worker, _parse_in_worker
from monitor.types import Item

HEADERS = {"content-type": "application/rss+xml; charset=utf-8"}


def _crash_on_demand(body, headers, url, feed_name, encoding):
    """Worker target for tests: dies like an OOM-killed process when asked to."""
    if feed_name == "crash":
        os._exit(137)
    return _parse_in_worker(body, headers, url, feed_name, encoding)


def test_process_pool_gives_the_same_items_as_parse_feed():
    body = rss(ARABIC_ITEMS * 5).encode()
    expected = parse_feed(body, HEADERS, url="http://x/f.xml", feed_name="f")

    async def go():
        pool = WorkerPool(workers=2)
        try:
            return await asyncio.gather(*(pool.parse(body, HEADERS, url="http://x/f.xml", feed_name="f")
                                          for _ in range(6)))
        finally:
            pool.close()

    results = asyncio.run(go())
    assert len(expected.items) == 10
    for parsed in results:
        assert parsed.items == expected.items and parsed.title == expected.title


def test_parse_errors_cross_the_process_boundary_with_their_kind():
    async def go():
        pool = WorkerPool(workers=1)
        try:
            with pytest.raises(ParseError) as info:
                await pool.parse(_text_amplification(), HEADERS, url="http://x/evil.xml", feed_name="evil")
            return info.value
        finally:
            pool.close()

    err = asyncio.run(go())
    assert err.kind == "entities" and err.url == "http://x/evil.xml" and "ENTITY" in err.message


def test_a_crashed_worker_fails_only_its_feed_and_the_pool_is_replaced():
    good = rss().encode()

    async def go():
        pool = WorkerPool(workers=2, parse_target=_crash_on_demand)
        try:
            before = await pool.parse(good, HEADERS, url="http://x/a", feed_name="a")
            with pytest.raises(ParseError) as info:
                await pool.parse(good, HEADERS, url="http://x/boom", feed_name="crash")
            after = await asyncio.gather(*(pool.parse(good, HEADERS, url=f"http://x/{i}", feed_name=str(i))
                                           for i in range(4)))
            return before, info.value, after, pool.replaced
        finally:
            pool.close()

    before, err, after, replaced = asyncio.run(go())
    assert len(before.items) == 2
    assert err.kind == "worker_crashed" and err.url == "http://x/boom"
    assert replaced == 1
    assert [len(p.items) for p in after] == [2, 2, 2, 2]


@pytest.mark.parametrize("workers", [0, 2])
def test_the_event_loop_keeps_running_during_a_big_parse(workers):
    """The parse is handed off the loop: the loop's next turn comes before the parse ends.

    An ordering, not a count of turns in a time window: if the parse ran on the loop,
    the task would be done (or the loop blocked) by the first turn after starting it.
    """
    big = rss([(f"عاجل خبر {i}", f"https://example.com/{i}", "دير الزور " * 20) for i in range(6_000)]).encode()

    async def go():
        pool = WorkerPool(workers=workers)
        try:
            task = asyncio.ensure_future(pool.parse(big, HEADERS, url="http://x/big", feed_name="big",))
            await asyncio.sleep(0)  # the task's first step hands the parse to a thread or a process
            await asyncio.sleep(0)  # ... and the loop turns again meanwhile
            in_flight = not task.done()
            return in_flight, (await task)
        finally:
            pool.close()

    in_flight, parsed = asyncio.run(go())
    assert len(parsed.items) == 500  # max_items
    assert in_flight, "the parse was over before the loop could turn: it ran on the loop"


def test_small_configs_and_single_cores_parse_in_a_thread():
    assert not WorkerPool.for_feeds(3, cpus=8).uses_processes
    assert not WorkerPool.for_feeds(1000, cpus=1).uses_processes
    pool = WorkerPool.for_feeds(1000, cpus=2)
    assert pool.uses_processes and pool.workers == 2
    pool.close()


# -- analysis (rule matching, fingerprint, MinHash) in the workers -------------------

RULES_A = "rules:\n  - id: bukamal\n    title: Al-Bukamal\n    any: [bukamal]\n"
RULES_B = "rules:\n  - id: omar\n    title: al-Omar field\n    any: [omar_field]\n"


def _context(tmp_path, name: str, text: str):
    from monitor.ingest.analysis import AnalysisContext
    from monitor.rules import load_rules
    from monitor.stories.index import StoryIndex

    root = Path(__file__).resolve().parent.parent / "rules"
    rules_dir = tmp_path / name
    rules_dir.mkdir()
    (rules_dir / "entities.yaml").write_text((root / "entities.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    (rules_dir / "rules.yaml").write_text(text, encoding="utf-8")
    stories = StoryIndex()
    return AnalysisContext(load_rules([rules_dir]), stories.settings, stories.permutations)


LONG = ("قالت قوات سوريا الديمقراطية إنها سيطرت على حقل العمر النفطي شرق دير الزور بعد معارك "
        "مع تنظيم الدولة استمرت أياما قرب البوكمال والميادين على الحدود مع العراق")
ITEMS = [Item(feed="f", key=f"guid:{i}", title=title, summary=LONG if i % 2 else "")
         for i, title in enumerate(["البوكمال: معارك", "حقل العمر", "متوسط العمر المتوقع", "قسد في البوكمال"])]


def _summary(analyses):
    return [([m.rule_id for m in a.matches], a.dedup and (a.dedup.link, a.dedup.fingerprint.text_hash),
             None if a.dedup is None else (a.dedup.signatures.tolist(), sorted(a.dedup.furniture)))
            for a in analyses]


def test_analysis_in_workers_equals_analysis_in_process(tmp_path):
    from monitor.ingest.analysis import analyze_items

    context = _context(tmp_path, "a", RULES_A + RULES_B[len("rules:\n"):])
    expected = analyze_items(ITEMS, context)

    async def go():
        pool = WorkerPool(workers=2)
        pool.use(context)
        try:
            return await asyncio.gather(*(pool.analyze(ITEMS, context) for _ in range(4))), pool.started
        finally:
            pool.close()

    results, started = asyncio.run(go())
    assert started == 1
    assert [[m.rule_id for m in a.matches] for a in expected] == [["bukamal"], ["bukamal", "omar"], [],
                                                                           ["bukamal", "omar"]]
    assert expected[1].dedup.signatures.shape == (2, context.dedup.num_perm) and expected[0].dedup is not None
    assert expected[0].dedup.fingerprint.word_count < context.dedup.min_words, "a headline alone: exact dedup only"
    assert expected[1].dedup.furniture == expected[3].dedup.furniture == set(), "one text, two headlines"
    assert expected[2].dedup is None, "no rule matched: no dedup work"
    for analyses in results:
        assert _summary(analyses) == _summary(expected)


def test_a_reload_reaches_the_workers_and_a_poll_from_before_keeps_its_rules(tmp_path):
    old, new = _context(tmp_path, "old", RULES_A), _context(tmp_path, "new", RULES_B)

    async def go():
        pool = WorkerPool(workers=2)
        pool.use(old)
        try:
            before = await pool.analyze(ITEMS, old)
            pool.use(new)  # a reload
            stale = await pool.analyze(ITEMS, old)  # a poll that started before it
            after = await pool.analyze(ITEMS, new)
            return before, stale, after, pool.started
        finally:
            pool.close()

    before, stale, after, started = asyncio.run(go())
    rule_ids = lambda analyses: [[m.rule_id for m in a.matches] for a in analyses]  # noqa: E731
    assert rule_ids(before) == rule_ids(stale) == [["bukamal"], ["bukamal"], [], ["bukamal"]]
    assert rule_ids(after) == [[], ["omar"], [], ["omar"]]
    assert started == 2


def _crash_in_analysis(items):
    if any(item.title == "crash" for item in items):
        os._exit(137)
    return _analyze_in_worker(items)


def test_a_worker_dying_while_matching_fails_only_that_feed(tmp_path):
    context = _context(tmp_path, "a", RULES_A)

    async def go():
        pool = WorkerPool(workers=2, analyze_target=_crash_in_analysis)
        pool.use(context)
        try:
            with pytest.raises(ParseError) as info:
                await pool.analyze([Item(feed="f", key="k", title="crash")], context, url="http://x/boom")
            after = await pool.analyze(ITEMS, context)
            return info.value, after, pool.replaced
        finally:
            pool.close()

    err, after, replaced = asyncio.run(go())
    assert err.kind == "worker_crashed" and err.url == "http://x/boom" and "matching" in err.message
    assert replaced == 1 and len(after) == len(ITEMS)


def test_resize_moves_jobs_between_a_thread_and_processes():
    body = rss().encode()

    async def go():
        pool = WorkerPool(workers=0)
        try:
            counts = [(await pool.parse(body, HEADERS, url="http://x/", feed_name="f"), pool.started)[1]]
            pool.resize(2)
            counts.append((await pool.parse(body, HEADERS, url="http://x/", feed_name="f"), pool.started)[1])
            pool.resize(0)
            counts.append((await pool.parse(body, HEADERS, url="http://x/", feed_name="f"), pool.started)[1])
            return counts
        finally:
            pool.close()

    assert asyncio.run(go()) == [0, 1, 1]


def test_a_reload_that_adds_feeds_sizes_the_worker_pool_for_them(tmp_path):
    """3 feeds parse in a thread; a reload to 25 feeds moves parsing to processes (on 2+ cores)."""
    import io

    import yaml
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from monitor.service.daemon import Daemon

    root = Path(__file__).resolve().parent.parent
    config = tmp_path / "config.yaml"

    def write(n_feeds: int) -> None:
        config.write_text(yaml.safe_dump({
            "state_path": str(tmp_path / "state.sqlite3"), "rules": [str(root / "rules")],
            "feeds": [{"name": f"f{i}", "url": f"http://127.0.0.1:9/{i}.xml"} for i in range(n_feeds)],
            "channels": {"console": {"url": "console://"}}}), encoding="utf-8")

    async def go():
        write(3)
        daemon = Daemon(config, console=io.StringIO(), journald=False)
        daemon.setup()
        daemon.scheduler = AsyncIOScheduler()  # not started: the reload only registers the new feeds' jobs
        try:
            before = daemon.workers.workers
            write(25)
            assert await daemon._reload("test")
            return before, daemon.workers.workers
        finally:
            await daemon.close()

    before, after = asyncio.run(go())
    assert before == 0
    assert after == WorkerPool.workers_for(25)
    if len(os.sched_getaffinity(0)) >= 2:
        assert after >= 2


# -- no orphans (issue 17): the workers, the forkserver and the resource tracker end with the daemon ----

_HOLDER = """
import asyncio, sys
sys.path[:0] = {paths!r}
from feedfarm import rss
from monitor.ingest.workers import WorkerPool

async def main():
    pool = WorkerPool(workers=2)
    await asyncio.gather(*(pool.parse(rss().encode(), {{}}, url="http://x/", feed_name="f") for _ in range(4)))
    print("workers running", flush=True)
    await asyncio.sleep(600)

if __name__ == "__main__":
    asyncio.run(main())
"""


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (children, their children...), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def alive(pids: list[int]) -> list[int]:
    out = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            out.append(pid)
    return out


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process tree from /proc")
def test_sigkill_of_the_main_process_leaves_no_worker_forkserver_or_tracker(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    root = Path(__file__).resolve().parent.parent
    script = tmp_path / "holder.py"
    script.write_text(_HOLDER.format(paths=[str(root), str(root / "tests")]), encoding="utf-8")
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    below: list[int] = []
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "workers running"
        below = descendants(proc.pid)
        commands = [Path(f"/proc/{pid}/cmdline").read_bytes() for pid in below]
        assert any(b"forkserver" in c for c in commands) and any(b"resource_tracker" in c for c in commands)
        assert len(below) >= 4, commands  # tracker, forkserver, 2 workers
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 30  # a safety limit for a hang, not a measurement
        while alive(below) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = alive(below)
        assert not left, [Path(f"/proc/{pid}/cmdline").read_bytes()[:100] for pid in left]
    finally:
        for pid in alive(below) + ([proc.pid] if proc.poll() is None else []):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
