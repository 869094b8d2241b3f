"""State database: schema versions and migration."""

from __future__ import annotations

import sqlite3

import pytest

from monitor.state import SCHEMA_VERSION, StateError, open_state
from monitor.state.schema import MIGRATIONS


def test_a_version_1_database_gains_the_feed_index_and_keeps_its_rows(tmp_path):
    path = tmp_path / "state.sqlite3"
    conn = sqlite3.connect(path)
    for statement in MIGRATIONS[1]:
        conn.execute(statement)
    conn.execute("INSERT INTO meta(key, value) VALUES ('created', '1700000000')")
    conn.execute("INSERT INTO items(key, feed, content_hash, first_seen, last_seen) VALUES ('guid:1', 'a', 'h', 1, 1)")
    conn.execute("PRAGMA user_version=1")
    conn.commit()
    conn.close()

    migrated = open_state(path)
    assert migrated.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
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


def test_a_database_with_tables_but_no_version_is_refused(tmp_path):
    path = tmp_path / "state.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (text TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(StateError, match="no schema version"):
        open_state(path)


def test_each_step_runs_once_and_a_new_database_gets_every_step(tmp_path):
    db = open_state(tmp_path / "state.sqlite3")
    assert db.schema_version() == SCHEMA_VERSION == max(MIGRATIONS)
    created = db.scalar("SELECT value FROM meta WHERE key = 'created'")
    db.close()
    again = open_state(tmp_path / "state.sqlite3")  # nothing to do: no step runs twice
    assert again.scalar("SELECT value FROM meta WHERE key = 'created'") == created
    again.close()
