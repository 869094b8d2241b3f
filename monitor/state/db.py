"""SQLite state: feeds, seen items, stories, alerts and the delivery outbox.

One database file, WAL mode, a busy timeout on every connection, and every
write inside ``BEGIN IMMEDIATE`` (a deferred transaction that upgrades to a
write lock fails at once under WAL, whatever the timeout). The daemon is the
only writer; the CLI reads while it runs. ``synchronous=FULL`` because the
outbox must survive a power cut, not only a crash.

The schema is versioned with ``PRAGMA user_version``; a database written by a
newer version is refused instead of being misread.
"""

from __future__ import annotations

import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from monitor.errors import MonitorError

SCHEMA_VERSION = 2  # 2: index items(feed, last_seen), for polls that skip an identical body

# Each block belongs to the module that owns those rows: feeds/items to
# ``pipeline``, stories to ``dedup``, alerts/outbox to ``route``/``deliver``.
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT
);

-- One row per configured feed (keyed by its config name).
CREATE TABLE IF NOT EXISTS feeds (
    name              TEXT PRIMARY KEY,
    url               TEXT NOT NULL,
    etag              TEXT,
    last_modified     TEXT,
    redirected_url    TEXT,
    body_hash         TEXT,
    last_full_fetch_at REAL,
    last_poll_at      REAL,
    last_success_at   REAL,
    last_error        TEXT,
    last_error_kind   TEXT,
    last_error_at     REAL,
    consecutive_errors INTEGER NOT NULL DEFAULT 0,
    interval          REAL,
    next_poll_at      REAL,
    items_seen        INTEGER NOT NULL DEFAULT 0,
    alerts_created    INTEGER NOT NULL DEFAULT 0
);

-- Every item ever seen (until pruned), across all feeds.
CREATE TABLE IF NOT EXISTS items (
    key          TEXT PRIMARY KEY,
    feed         TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    title        TEXT,
    link         TEXT,
    story_id     INTEGER,
    rules        TEXT NOT NULL DEFAULT '[]',
    first_seen   REAL NOT NULL,
    last_seen    REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS items_first_seen ON items(first_seen);
CREATE INDEX IF NOT EXISTS items_content_hash ON items(content_hash);
CREATE INDEX IF NOT EXISTS items_feed_seen ON items(feed, last_seen);

-- A story is one event as reported by one or more outlets.
CREATE TABLE IF NOT EXISTS stories (
    id         INTEGER PRIMARY KEY,
    created    REAL NOT NULL,
    updated    REAL NOT NULL,
    text_hash  TEXT NOT NULL,
    minhash    BLOB,
    title      TEXT,
    sources    INTEGER NOT NULL DEFAULT 1,
    shingles   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS stories_updated ON stories(updated);
CREATE INDEX IF NOT EXISTS stories_created ON stories(created);
CREATE INDEX IF NOT EXISTS stories_text_hash ON stories(text_hash);

CREATE TABLE IF NOT EXISTS story_items (
    story_id  INTEGER NOT NULL REFERENCES stories(id) ON DELETE CASCADE,
    item_key  TEXT NOT NULL,
    feed      TEXT NOT NULL,
    link      TEXT,
    title     TEXT,
    added     REAL NOT NULL,
    PRIMARY KEY (story_id, item_key)
);
CREATE INDEX IF NOT EXISTS story_items_key ON story_items(item_key);
CREATE INDEX IF NOT EXISTS story_items_link ON story_items(link);
CREATE INDEX IF NOT EXISTS story_items_feed ON story_items(story_id, feed);

-- One alert per (story, rule): a story never alerts twice for one rule.
CREATE TABLE IF NOT EXISTS alerts (
    id        INTEGER PRIMARY KEY,
    story_id  INTEGER NOT NULL,
    rule_id   TEXT NOT NULL,
    item_key  TEXT NOT NULL,
    created   REAL NOT NULL,
    severity  TEXT NOT NULL DEFAULT 'info',
    payload   TEXT NOT NULL,
    UNIQUE (story_id, rule_id)
);
CREATE INDEX IF NOT EXISTS alerts_created ON alerts(created);

-- One row per message to send on one channel. 'sending' is committed before
-- the send, so after a crash it means "maybe sent": resent, marked a repeat.
CREATE TABLE IF NOT EXISTS outbox (
    id              INTEGER PRIMARY KEY,
    alert_id        INTEGER REFERENCES alerts(id) ON DELETE CASCADE,
    channel         TEXT NOT NULL,
    kind            TEXT NOT NULL DEFAULT 'alert',
    state           TEXT NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'sending', 'sent', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    not_before      REAL NOT NULL,
    created         REAL NOT NULL,
    sent_at         REAL,
    last_error      TEXT,
    possible_repeat INTEGER NOT NULL DEFAULT 0,
    -- Rows of one channel with the same group_key that are due together go
    -- out as one message (group_wait / group_interval / digest); NULL = alone.
    group_key       TEXT,
    -- Backoff after a failed attempt; the row stays head of its channel's line.
    retry_at        REAL,
    -- Telegram pieces of a split message already accepted (resume, not repeat).
    parts_sent      INTEGER NOT NULL DEFAULT 0,
    -- Text of an operational notice (kind 'notice', no alert_id).
    body            TEXT,
    UNIQUE (alert_id, channel, kind)
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox(state, channel, not_before);
"""


class StateError(MonitorError):
    """The state database cannot be used (newer schema, unreadable file)."""


def connect(path: str | Path, *, readonly: bool = False, timeout: float = 10.0) -> sqlite3.Connection:
    """Open the state database with the pragmas every connection needs.

    ``readonly`` is for the CLI reading while the daemon runs: WAL lets it read
    without blocking the writer. It never uses ``immutable`` (stale reads).
    """
    path = Path(path)
    if readonly:
        if not path.exists():
            raise StateError(f"{path}: no state database yet (has the daemon run?)")
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout,
                               isolation_level=None, check_same_thread=False)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StateError(f"{path}: cannot use state database: {exc}") from None
    conn.row_factory = sqlite3.Row
    try:
        conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        conn.execute("PRAGMA foreign_keys=ON")
        if readonly:
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()  # fails now on a corrupt file
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise StateError(f"{path}: cannot use state database: {exc}") from None
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``; rolls back on any exception."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def open_state(path: str | Path) -> sqlite3.Connection:
    """Open (creating or migrating) the daemon's read-write state database."""
    conn = connect(path)
    try:
        migrate(conn)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise StateError(f"{path}: cannot use state database: {exc}") from exc
    return conn


def migrate(conn: sqlite3.Connection) -> None:
    """Bring the schema to ``SCHEMA_VERSION``; refuse a newer database.

    Every statement of ``SCHEMA`` is idempotent (``IF NOT EXISTS``), so running
    all of them gives an older database exactly what it lacks (v1 -> v2: one index).
    """
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StateError(
            f"state database has schema version {version}, this monitor knows {SCHEMA_VERSION}: "
            "upgrade the monitor or point it at another state path"
        )
    if version == SCHEMA_VERSION:
        return
    with transaction(conn):
        for statement in _statements(SCHEMA):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('created', ?)", (str(time.time()),))


def _statements(script: str) -> list[str]:
    # executescript() would COMMIT the surrounding transaction; split instead.
    out, buf = [], []
    for line in script.splitlines():
        if line.strip().startswith("--"):
            continue
        buf.append(line)
        if line.rstrip().endswith(";"):
            stmt = "\n".join(buf).strip()
            if sqlite3.complete_statement(stmt):
                out.append(stmt)
                buf = []
    if "".join(buf).strip():
        out.append("\n".join(buf))
    return out
