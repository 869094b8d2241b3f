"""The state schema, one migration step per version.

The backend keeps the version (SQLite: ``PRAGMA user_version``; PostgreSQL:
a one-row table). The statements are written in SQLite's spelling and each
backend translates the column types (``Database.ddl``). ``migrate`` refuses a database
that has tables but no version (not ours, or damaged: guessing would misread
it) and one written by a newer version of the monitor; otherwise it runs the
missing steps, each in its own transaction, so a crash mid-upgrade resumes at
the step that did not commit. Steps are append-only: a released step is never
edited, a change is a new step.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from monitor.state.db import Database, StateError

__all__ = ["SCHEMA_VERSION", "MIGRATIONS", "migrate"]

_V1 = (
    """CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT
    )""",
    # One row per configured feed (keyed by its config name).
    """CREATE TABLE feeds (
        name               TEXT PRIMARY KEY,
        url                TEXT NOT NULL,
        etag               TEXT,
        last_modified      TEXT,
        redirected_url     TEXT,
        body_hash          TEXT,
        last_full_fetch_at REAL,
        last_poll_at       REAL,
        last_success_at    REAL,
        last_error         TEXT,
        last_error_kind    TEXT,
        last_error_at      REAL,
        consecutive_errors INTEGER NOT NULL DEFAULT 0,
        interval           REAL,
        next_poll_at       REAL,
        items_seen         INTEGER NOT NULL DEFAULT 0,
        alerts_created     INTEGER NOT NULL DEFAULT 0
    )""",
    # Every item seen (until pruned), across all feeds.
    """CREATE TABLE items (
        key          TEXT PRIMARY KEY,
        feed         TEXT NOT NULL,
        content_hash TEXT NOT NULL,
        title        TEXT,
        link         TEXT,
        story_id     INTEGER,
        rules        TEXT NOT NULL DEFAULT '[]',
        first_seen   REAL NOT NULL,
        last_seen    REAL NOT NULL
    )""",
    "CREATE INDEX items_first_seen ON items(first_seen)",
    "CREATE INDEX items_content_hash ON items(content_hash)",
    # A story is one event as reported by one or more outlets.
    """CREATE TABLE stories (
        id         INTEGER PRIMARY KEY,
        created    REAL NOT NULL,
        updated    REAL NOT NULL,
        text_hash  TEXT NOT NULL,
        minhash    BLOB,
        title      TEXT,
        sources    INTEGER NOT NULL DEFAULT 1,
        shingles   INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX stories_updated ON stories(updated)",
    "CREATE INDEX stories_created ON stories(created)",
    "CREATE INDEX stories_text_hash ON stories(text_hash)",
    """CREATE TABLE story_items (
        story_id  INTEGER NOT NULL REFERENCES stories(id) ON DELETE CASCADE,
        item_key  TEXT NOT NULL,
        feed      TEXT NOT NULL,
        link      TEXT,
        title     TEXT,
        added     REAL NOT NULL,
        PRIMARY KEY (story_id, item_key)
    )""",
    "CREATE INDEX story_items_key ON story_items(item_key)",
    "CREATE INDEX story_items_link ON story_items(link)",
    "CREATE INDEX story_items_feed ON story_items(story_id, feed)",
    # One alert per (story, rule): a story never alerts twice for one rule.
    """CREATE TABLE alerts (
        id        INTEGER PRIMARY KEY,
        story_id  INTEGER NOT NULL,
        rule_id   TEXT NOT NULL,
        item_key  TEXT NOT NULL,
        created   REAL NOT NULL,
        severity  TEXT NOT NULL DEFAULT 'info',
        payload   TEXT NOT NULL,
        UNIQUE (story_id, rule_id)
    )""",
    "CREATE INDEX alerts_created ON alerts(created)",
    # One row per message to send on one channel. 'sending' is committed before
    # the send, so after a crash it means "maybe sent": resent, marked a repeat.
    # group_key: rows of one channel due together go out as one message.
    # retry_at: backoff after a failed attempt. parts_sent: pieces of a split
    # message already accepted. body: text of an operational notice.
    """CREATE TABLE outbox (
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
        group_key       TEXT,
        retry_at        REAL,
        parts_sent      INTEGER NOT NULL DEFAULT 0,
        body            TEXT,
        UNIQUE (alert_id, channel, kind)
    )""",
    "CREATE INDEX outbox_due ON outbox(state, channel, not_before)",
)

# Delivery that never wedges (issue 16): a row keeps its failed attempts, the
# reason of the last one and when it first failed (the give-up rules read
# them), the channel's id of the message it went out in and how (message,
# reply, edit: the root of a story's thread), its subject (email threads keep
# it), and 'silenced' joins the states. SQLite cannot change a CHECK
# constraint in place, so the table is rebuilt (no other table points at it).
_V4 = (
    """CREATE TABLE outbox_v4 (
        id              INTEGER PRIMARY KEY,
        alert_id        INTEGER REFERENCES alerts(id) ON DELETE CASCADE,
        channel         TEXT NOT NULL,
        kind            TEXT NOT NULL DEFAULT 'alert',
        state           TEXT NOT NULL DEFAULT 'pending'
                        CHECK (state IN ('pending', 'sending', 'sent', 'dead', 'silenced')),
        attempts        INTEGER NOT NULL DEFAULT 0,
        not_before      REAL NOT NULL,
        created         REAL NOT NULL,
        sent_at         REAL,
        last_error      TEXT,
        possible_repeat INTEGER NOT NULL DEFAULT 0,
        group_key       TEXT,
        retry_at        REAL,
        parts_sent      INTEGER NOT NULL DEFAULT 0,
        body            TEXT,
        failures        INTEGER NOT NULL DEFAULT 0,
        first_failed_at REAL,
        reason          TEXT,
        message_id      TEXT,
        sent_as         TEXT CHECK (sent_as IN ('message', 'reply', 'edit')),
        subject         TEXT,
        silence_id      INTEGER,
        UNIQUE (alert_id, channel, kind)
    )""",
    "INSERT INTO outbox_v4(id, alert_id, channel, kind, state, attempts, not_before, created, sent_at, last_error, "
    "possible_repeat, group_key, retry_at, parts_sent, body, failures) "
    "SELECT id, alert_id, channel, kind, state, attempts, not_before, created, sent_at, last_error, "
    "possible_repeat, group_key, retry_at, parts_sent, body, CASE WHEN last_error IS NULL THEN 0 ELSE attempts END "
    "FROM outbox",
    "DROP TABLE outbox",
    "ALTER TABLE outbox_v4 RENAME TO outbox",
    "CREATE INDEX outbox_due ON outbox(state, channel, not_before)",
    "CREATE INDEX outbox_message ON outbox(channel, message_id)",
    # Silences (monitor silence add): alerts matching an active one are recorded
    # as silenced, not sent. A NULL matcher matches anything; at least one is set.
    """CREATE TABLE silences (
        id       INTEGER PRIMARY KEY,
        rule_id  TEXT,
        entity   TEXT,
        channel  TEXT,
        starts   REAL NOT NULL,
        ends     REAL NOT NULL,
        comment  TEXT NOT NULL DEFAULT '',
        author   TEXT NOT NULL DEFAULT '',
        created  REAL NOT NULL,
        CHECK (rule_id IS NOT NULL OR entity IS NOT NULL OR channel IS NOT NULL)
    )""",
    "CREATE INDEX silences_ends ON silences(ends)",
)

_V6 = (
    # One row per item folded into a story: its content as sorted uint32 shingle hashes, the
    # int64 hashes of its content sentences, and the int32 band keys it is indexed under.
    """CREATE TABLE story_members (
        id         INTEGER PRIMARY KEY,
        story_id   INTEGER NOT NULL,
        item_key   TEXT NOT NULL,
        feed       TEXT NOT NULL,
        added      REAL NOT NULL,
        shingles   BLOB NOT NULL,
        sentences  BLOB NOT NULL,
        bands      BLOB NOT NULL
    )""",
    "CREATE INDEX story_members_story ON story_members(story_id)",
    "CREATE INDEX story_members_added ON story_members(added)",
    """CREATE TABLE story_bands (
        key        INTEGER NOT NULL,
        member_id  INTEGER NOT NULL,
        PRIMARY KEY (key, member_id)
    )""",
    # Content sentences of live stories (the hash of their last words): a copy is found by one
    # it keeps, and a sentence that unrelated stories share is stock text.
    """CREATE TABLE story_sentences (
        hash      INTEGER NOT NULL,
        story_id  INTEGER NOT NULL,
        PRIMARY KEY (hash, story_id)
    )""",
    "CREATE INDEX story_sentences_story ON story_sentences(story_id)",
    # The sentences learned as a feed's furniture (footer, share bar...), and when last seen.
    """CREATE TABLE feed_sentences (
        feed       TEXT NOT NULL,
        hash       INTEGER NOT NULL,
        last_seen  REAL NOT NULL,
        PRIMARY KEY (feed, hash)
    )""",
    "CREATE INDEX feed_sentences_seen ON feed_sentences(last_seen)",
)

#: Step N brings a database from version N-1 to N.
MIGRATIONS: dict[int, Sequence[str]] = {
    1: _V1,
    # Polls that skip an identical body refresh their items by (feed, last_seen).
    2: ("CREATE INDEX IF NOT EXISTS items_feed_seen ON items(feed, last_seen)",),
    # Housekeeping prunes items by last_seen (it used to create this index itself).
    3: ("CREATE INDEX IF NOT EXISTS items_last_seen ON items(last_seen)",),
    4: _V4,
    # Several daemon instances on one database: each feed's poll is leased to one
    # instance at a time, each channel's delivery too; instances say they are alive.
    5: ("ALTER TABLE feeds ADD COLUMN lease_owner TEXT",
        "ALTER TABLE feeds ADD COLUMN lease_until REAL",
        """CREATE TABLE instances (
            id         TEXT PRIMARY KEY,
            host       TEXT NOT NULL,
            pid        INTEGER NOT NULL,
            version    TEXT NOT NULL,
            started    REAL NOT NULL,
            heartbeat  REAL NOT NULL,
            stopped    REAL
        )""",
        """CREATE TABLE channel_leases (
            channel  TEXT PRIMARY KEY,
            owner    TEXT NOT NULL,
            until    REAL NOT NULL
        )""",
        # A channel's sends of the last minute, read by an instance taking over its lease.
        "CREATE INDEX outbox_sent ON outbox(channel, sent_at)",
        # Per-item cost flat as history grows: the last message of a rule on a channel
        # (cooldown, group_interval) was a join over the channel's whole history.
        "ALTER TABLE outbox ADD COLUMN rule_id TEXT",
        "UPDATE outbox SET rule_id = (SELECT rule_id FROM alerts WHERE alerts.id = outbox.alert_id)",
        "CREATE INDEX outbox_rule ON outbox(channel, rule_id, kind, not_before)"),
    # Story dedup from the database (several instances share it): each story is a cluster of
    # members (an item's content shingles, furniture left out), found through the LSH band
    # keys of their MinHash or a sentence they carry; each feed's learned furniture. Stories of
    # earlier versions keep their exact keys (link, text hash) only.
    6: _V6,
}
SCHEMA_VERSION = max(MIGRATIONS)


def migrate(db: Database) -> int:
    """Bring the schema to ``SCHEMA_VERSION``; returns the version found before."""
    with db.migration_lock():
        found = db.schema_version()
        if found > SCHEMA_VERSION:
            raise StateError(
                f"{db.location}: state database has schema version {found}, this monitor knows "
                f"{SCHEMA_VERSION}: upgrade the monitor or point it at another state")
        if found == 0 and db.has_tables():
            raise StateError(
                f"{db.location}: the database has tables but no schema version: it was not written by this "
                "monitor (or is damaged); point the state at a new file or database")
        for version in range(found + 1, SCHEMA_VERSION + 1):
            with db.transaction():
                for statement in MIGRATIONS[version]:
                    db.execute(db.ddl(statement))
                if version == 1:
                    db.execute("INSERT INTO meta(key, value) VALUES ('created', ?)", (str(time.time()),))
                db.set_schema_version(version)
    return found
