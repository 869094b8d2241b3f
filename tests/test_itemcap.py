"""The item cap (issue 17): a feed with more entries than the cap keeps its newest,
says so in a WARNING, and costs bounded memory however many entries it has."""

from __future__ import annotations

import email.utils
import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import LOOPBACK_FETCH, ROOT, run_cli

from monitor.errors import ParseError
from monitor.feeds.itemcap import newest_entries
from monitor.feeds.parse import parse_feed

BASE = 1_509_948_000  # 2017-11-06


def rss(entries: list[str]) -> bytes:
    return ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>x</title>'
            '<link>https://x.example/</link><description>d</description>' + "".join(entries)
            + "</channel></rss>").encode()


def item(n: int, *, title: str | None = None, dated: bool = True) -> str:
    date = f"<pubDate>{email.utils.formatdate(BASE + n * 60, usegmt=True)}</pubDate>" if dated else ""
    return (f"<item><title>{title or f'خبر {n}'}</title><link>https://x.example/{n}</link>"
            f"<guid>g{n}</guid>{date}</item>")


def titles(body: bytes, limit: int) -> list[str]:
    return [i.title for i in parse_feed(body, {}, url="http://x/f", feed_name="f", max_items=limit).items]


@pytest.mark.parametrize("order", ["oldest first", "newest first"])
def test_the_newest_entries_are_read_whatever_the_order(order):
    numbers = list(range(600)) if order == "oldest first" else list(range(599, -1, -1))
    body = rss([item(n) for n in numbers])
    feed = parse_feed(body, {}, url="http://x/f", feed_name="f", max_items=500)
    assert sorted(int(i.title.split()[1]) for i in feed.items) == list(range(100, 600))
    assert feed.skipped == 100 and any("600 entries" in w and "100 oldest skipped" in w for w in feed.warnings)
    # Document order is kept among the entries read.
    read = [int(i.title.split()[1]) for i in feed.items]
    assert read == sorted(read, reverse=order == "newest first")


def test_undated_entries_keep_document_order_and_dated_ones_rank_first():
    undated = rss([item(n, dated=False) for n in range(30)])
    assert titles(undated, 10) == [f"خبر {n}" for n in range(10)]
    mixed = rss([item(n, dated=n % 2 == 0) for n in range(30)])  # even dated, odd undated
    kept = titles(mixed, 20)
    assert {f"خبر {n}" for n in range(0, 30, 2)} <= set(kept)  # all 15 dated ones
    assert [t for t in kept if int(t.split()[1]) % 2] == [f"خبر {n}" for n in (1, 3, 5, 7, 9)]


def test_atom_byte_order_mark_and_undeclared_entities_are_scanned():
    atom = ('<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>a</title>'
            + "".join(f"<entry><id>e{n}</id><title>t{n}&nbsp;x</title><updated>2017-11-06T10:{n:02d}:00Z</updated>"
                      f"<published>2017-11-0{1 + n % 5}T00:00:00Z</published></entry>" for n in range(40))
            + "</feed>").encode()
    selection = newest_entries(b"\xef\xbb\xbf" + atom, 8)
    assert selection is not None and (selection.total, selection.kept) == (40, 8)
    assert selection.document.startswith(b"\xef\xbb\xbf<?xml") and selection.document.endswith(b"</feed>")
    kept = set(re.findall(rb"<id>(e\d+)</id>", selection.document))
    # <published> ranks before <updated>: days 5 (n % 5 == 4) are newest, then day 4 ...
    assert kept == {b"e4", b"e9", b"e14", b"e19", b"e24", b"e29", b"e34", b"e39"}


def test_a_feed_that_is_not_well_formed_is_capped_by_feedparser_or_refused_when_huge():
    broken = rss([item(n) for n in range(600)]).replace(b"</channel>", b"<oops></channel>")
    feed = parse_feed(broken, {}, url="http://x/f", feed_name="f", max_items=500)
    assert feed.skipped == 100 and sorted(int(i.title.split()[1]) for i in feed.items) == list(range(100, 600))
    huge = rss([item(n, title="t") for n in range(6_000)]).replace(b"</channel>", b"<oops></channel>")
    with pytest.raises(ParseError) as info:
        parse_feed(huge, {}, url="http://x/f", feed_name="f", max_items=500)
    assert info.value.kind == "too_many_items"


# -- as the daemon runs it ------------------------------------------------------------

MATCHING = "بلاغ {n}: قسد تتقدم في البوكمال"  # short: each its own story


@pytest.mark.parametrize("order", ["oldest first", "newest first"])
def test_run_alerts_the_100_newest_matching_items_of_a_600_item_feed(tmp_path, feed_server, order):
    # 500 old quiet items, then the 100 newest, which all match a rule.
    entries = [item(n) if n < 500 else item(n, title=MATCHING.format(n=n)) for n in range(600)]
    feed_server.set("/big.xml", rss(entries if order == "oldest first" else entries[::-1]))
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "state_path": str(tmp_path / "state.sqlite3"), "rules": [str(ROOT / "rules")],
        "feeds": [{"name": "big-feed", "url": feed_server.url("/big.xml")}],
        "channels": {"console": {"url": "console://"}}, "fetch": LOOPBACK_FETCH,
        "defaults": {"first_poll": "all"}}, allow_unicode=True),  # the items are from 2017
        encoding="utf-8")
    result = run_cli("run", "--once", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert re.search(r"WARNING .*feed big-feed: 100 older items skipped", result.stderr), result.stderr
    conn = sqlite3.connect(tmp_path / "state.sqlite3")
    alerted = {key for (key,) in conn.execute("SELECT DISTINCT item_key FROM alerts")}
    conn.close()
    assert alerted == {f"guid:g{n}" for n in range(500, 600)}


def _memory_cgroup(limit_bytes: int) -> Path | None:
    """A cgroup-v1 memory group under ours with ``limit_bytes``, or None where there is none."""
    try:
        line = next(ln for ln in Path("/proc/self/cgroup").read_text().splitlines() if ":memory:" in ln)
        group = Path("/sys/fs/cgroup/memory") / line.split(":", 2)[2].lstrip("/") / f"monitor-test-{os.getpid()}"
        group.mkdir()
    except (StopIteration, OSError):
        return None
    try:
        (group / "memory.limit_in_bytes").write_text(str(limit_bytes))
    except OSError:
        group.rmdir()
        return None
    return group


def test_three_10mb_feeds_of_300k_tiny_items_fit_a_768mib_unit(tmp_path, feed_server):
    """The unit's MemoryMax=768M, for real: the daemon runs inside a memory cgroup of that size."""
    limit = 768 * 1024 * 1024
    group = _memory_cgroup(limit)
    if group is None:
        pytest.skip("no writable cgroup-v1 memory controller here to enforce 768 MiB (needs root)")
    try:
        body = rss([f"<item><title>t{n}</title></item>" for n in range(300_000)])
        assert len(body) > 9_000_000
        feeds = [{"name": f"tiny{i}", "url": feed_server.set(f"/tiny{i}.xml", body)} for i in range(3)]
        config = tmp_path / "config.yaml"
        config.write_text(yaml.safe_dump({
            "state_path": str(tmp_path / "state.sqlite3"), "rules": [str(ROOT / "rules")], "feeds": feeds,
            "channels": {"console": {"url": "console://"}},
            "fetch": {**LOOPBACK_FETCH, "max_bytes": 12 * 1024 * 1024, "timeout": 120}}), encoding="utf-8")
        procs = group / "cgroup.procs"
        proc = subprocess.Popen([sys.executable, "-m", "monitor", "run", "--once", "--config", str(config)],
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: procs.write_text(str(os.getpid())))
        stdout, stderr = proc.communicate(timeout=600)
        peak = int((group / "memory.max_usage_in_bytes").read_text())
        print(f"\n3 x {len(body) / 1e6:.1f} MB feeds of 300k items: exit {proc.returncode}, "
              f"cgroup peak {peak / 2**20:.0f} MiB of {limit / 2**20:.0f}")
        assert proc.returncode == 0, stderr[-3000:]
        assert "3 feeds polled (0 failed" in stdout, stdout
        assert stderr.count("299500 older items skipped") == 3, stderr[-3000:]
        assert peak < limit
    finally:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                group.rmdir()
                break
            except OSError:  # still has a process: give it a moment to exit
                time.sleep(0.2)
