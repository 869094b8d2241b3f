"""Housekeeping on a real file database: pruning keeps it bounded and never
drops an undelivered alert; the checkpoint truncates the WAL."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from pydantic import ValidationError

from monitor.service.housekeeping import checkpoint, prune
from monitor.service.settings import HousekeepingSettings
from monitor.state import open_state

DAY = 86400.0
NOW = 1_700_000_000.0


@pytest.fixture
def conn(tmp_path: Path):
    c = open_state(tmp_path / "state.sqlite3")
    yield c
    c.close()


def _item(c, key, last_seen, story_id=None):
    c.execute("INSERT INTO items(key, feed, content_hash, story_id, first_seen, last_seen) VALUES (?,?,?,?,?,?)",
              (key, "f", "h" + key, story_id, last_seen - DAY, last_seen))


def _story(c, sid, updated):
    c.execute("INSERT INTO stories(id, created, updated, text_hash) VALUES (?,?,?,?)", (sid, updated, updated, "t"))
    c.execute("INSERT INTO story_items(story_id, item_key, feed, added) VALUES (?,?,?,?)",
              (sid, f"si{sid}", "f", updated))


def _alert(c, aid, sid, created, *states):
    c.execute("INSERT INTO alerts(id, story_id, rule_id, item_key, created, payload) VALUES (?,?,?,?,?,?)",
              (aid, sid, "r", "k", created, "{}"))
    for n, state in enumerate(states):
        c.execute("INSERT INTO outbox(alert_id, channel, state, not_before, created, sent_at) VALUES (?,?,?,?,?,?)",
                  (aid, f"ch{n}", state, created, created, created if state == "sent" else None))


def _count(c, table):
    return c.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def test_prune_deletes_old_finished_rows_and_keeps_everything_else(conn):
    old, recent = NOW - 40 * DAY, NOW - 5 * DAY
    with conn.transaction():
        _item(conn, "old", old)
        _item(conn, "recent", recent)
        _story(conn, 1, old)                     # old, nothing left: goes
        _story(conn, 2, old)                     # old but a recent item still points to it: stays
        _item(conn, "still-in-feed", recent, story_id=2)
        _story(conn, 3, recent)                  # recent: stays
        _story(conn, 4, old)                     # old, but its alert is still pending: stays
        _alert(conn, 10, 1, old, "sent", "dead")  # finished, story gone: goes with its outbox rows
        _alert(conn, 11, 2, old, "sent")          # story kept: alert kept (prevents a re-alert)
        _alert(conn, 12, 4, old, "sent", "pending")
        _alert(conn, 13, 99, old, "sending")      # ambiguous delivery: never deleted
        _alert(conn, 14, 3, recent, "sent")
        conn.execute("INSERT INTO outbox(alert_id, channel, kind, state, not_before, created, sent_at) "
                     "VALUES (NULL, 'ops', 'ops', 'sent', ?, ?, ?)", (old, old, old))

    report = prune(conn, HousekeepingSettings(retention_days=30, batch_size=2), NOW)

    assert {r[0] for r in conn.execute("SELECT key FROM items")} == {"recent", "still-in-feed"}
    assert {r[0] for r in conn.execute("SELECT id FROM stories")} == {2, 3, 4}
    assert {r[0] for r in conn.execute("SELECT story_id FROM story_items")} == {2, 3, 4}
    assert {r[0] for r in conn.execute("SELECT id FROM alerts")} == {11, 12, 13, 14}
    states = sorted(tuple(r) for r in conn.execute("SELECT alert_id, state FROM outbox"))
    assert states == [(12, "pending"), (13, "sending"), (14, "sent")]
    assert report.as_dict() == {"items": 1, "stories": 1, "alerts": 1, "outbox": 5}
    assert report.total == 8
    assert prune(conn, HousekeepingSettings(retention_days=30), NOW).total == 0  # nothing more to do


def test_database_stays_bounded_over_months(tmp_path: Path):
    """Polling 200 new items a day for 60 days with 5 days of retention: the
    file reaches its size within the window and then stops growing."""
    conn = open_state(tmp_path / "state.sqlite3")
    conn.execute("PRAGMA synchronous=OFF")  # durability is not what this test is about
    settings = HousekeepingSettings(retention_days=5, batch_size=150)
    sizes = {}
    for day in range(60):
        now = NOW + day * DAY
        with conn.transaction():
            for n in range(200):
                key = f"{day}-{n}"
                conn.execute("INSERT INTO stories(id, created, updated, text_hash, title) VALUES (?,?,?,?,?)",
                             (day * 1000 + n, now, now, "t", "خبر " * 20))
                conn.execute("INSERT INTO items(key, feed, content_hash, title, story_id, first_seen, last_seen) "
                             "VALUES (?,?,?,?,?,?,?)", (key, "f", key, "عنوان " * 20, day * 1000 + n, now, now))
                if n % 20 == 0:
                    _alert(conn, day * 1000 + n, day * 1000 + n, now, "sent")
        prune(conn, settings, now)
        checkpoint(conn)
        sizes[day] = conn.execute("PRAGMA page_count").fetchone()[0]
    assert _count(conn, "items") <= 6 * 200
    assert _count(conn, "alerts") <= 6 * 10
    assert sizes[59] <= sizes[15] * 1.1, sizes
    assert sizes[15] > sizes[1]  # it did grow while the window filled
    conn.close()


def test_checkpoint_truncates_the_wal(conn):
    with conn.transaction():
        for n in range(3000):
            _item(conn, f"k{n}", NOW)
    assert conn.wal_bytes() > 0
    assert checkpoint(conn) == 0
    assert conn.wal_bytes() == 0


def test_checkpoint_with_an_open_reader_is_partial_then_completes(conn, tmp_path: Path):
    reader = sqlite3.connect(tmp_path / "state.sqlite3", isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT COUNT(*) FROM items").fetchone()  # holds a read snapshot
    with conn.transaction():
        for n in range(2000):
            _item(conn, f"k{n}", NOW)
    assert checkpoint(conn) > 0  # cannot truncate under the reader, and does not raise
    reader.execute("COMMIT")
    reader.close()
    assert checkpoint(conn) == 0


def test_checkpoint_on_a_closed_connection_does_not_raise(tmp_path: Path):
    c = open_state(tmp_path / "s.sqlite3")
    c.close()
    assert checkpoint(c) == 0


def test_settings_are_strict():
    assert HousekeepingSettings().retention_days == 30
    assert HousekeepingSettings().interval_hours == 6
    with pytest.raises(ValidationError):
        HousekeepingSettings(retention_dayz=3)
    with pytest.raises(ValidationError):
        HousekeepingSettings(retention_days=0)
