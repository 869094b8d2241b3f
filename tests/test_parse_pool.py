"""ParsePool: feeds parsed in worker processes, a crashed worker replaced, the loop never blocked."""

from __future__ import annotations

import asyncio
import os

import pytest

from feedfarm import ARABIC_ITEMS, _text_amplification, rss
from monitor.errors import ParseError
from monitor.parse import parse_feed
from monitor.parse_pool import ParsePool, _parse_in_worker

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
        pool = ParsePool(workers=2)
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
        pool = ParsePool(workers=1)
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
        pool = ParsePool(workers=2, target=_crash_on_demand)
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
        pool = ParsePool(workers=workers)
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
    assert not ParsePool.for_feeds(3, cpus=8).uses_processes
    assert not ParsePool.for_feeds(1000, cpus=1).uses_processes
    pool = ParsePool.for_feeds(1000, cpus=2)
    assert pool.uses_processes and pool.workers == 2
    pool.close()
