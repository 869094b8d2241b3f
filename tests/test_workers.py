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
    # ~1.3 MB, 6k items: a second or more of feedparser CPU. The loop must keep turning meanwhile
    # (the watchdog pings from it); count its turns while the parse is in flight.
    big = rss([(f"عاجل خبر {i}", f"https://example.com/{i}", "دير الزور " * 20) for i in range(6_000)]).encode()

    async def go():
        pool = WorkerPool(workers=workers)
        turns = 0
        try:
            task = asyncio.ensure_future(pool.parse(big, HEADERS, url="http://x/big", feed_name="big",))
            while not task.done():
                turns += 1
                await asyncio.sleep(0.001)
            return turns, (await task)
        finally:
            pool.close()

    turns, parsed = asyncio.run(go())
    assert len(parsed.items) == 500  # max_items
    assert turns >= 50, f"the loop turned only {turns} times during the parse"


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
