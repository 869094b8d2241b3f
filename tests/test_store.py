"""State database: schema versions and migration."""

from __future__ import annotations

import sqlite3

import pytest

from monitor.state import db as store
from monitor.state.db import SCHEMA_VERSION, StateError, open_state


def test_a_version_1_database_gains_the_feed_index_and_keeps_its_rows(tmp_path):
    path = tmp_path / "state.sqlite3"
    conn = sqlite3.connect(path)
    for statement in store._statements(store.SCHEMA):
        if "items_feed_seen" not in statement:
            conn.execute(statement)
    conn.execute("INSERT INTO meta(key, value) VALUES ('created', '1700000000')")
    conn.execute("INSERT INTO items(key, feed, content_hash, first_seen, last_seen) VALUES ('guid:1', 'a', 'h', 1, 1)")
    conn.execute("PRAGMA user_version=1")
    conn.commit()
    conn.close()

    migrated = open_state(path)
    assert migrated.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    indexes = {r[0] for r in migrated.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "items_feed_seen" in indexes
    assert migrated.execute("SELECT key FROM items").fetchall()[0][0] == "guid:1"
    assert migrated.execute("SELECT value FROM meta WHERE key = 'created'").fetchone()[0] == "1700000000"
    plan = " ".join(r[3] for r in migrated.execute(
        "EXPLAIN QUERY PLAN UPDATE items SET last_seen = 2 WHERE feed = 'a' AND last_seen >= 1"))
    assert "items_feed_seen" in plan


def test_a_newer_database_is_refused(tmp_path):
    path = tmp_path / "state.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(StateError, match="newer|upgrade"):
        open_state(path)
