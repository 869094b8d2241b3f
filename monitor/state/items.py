"""The ``items`` table: every item seen (until pruned), across all feeds.

An item's row is its "seen" mark: the hash of its normalized text (an edit
that changes no letter is no change) and the rules it has already matched
(an edit alerts only for rules it did not match before).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from monitor.state.db import Database, placeholders

__all__ = ["SeenItem", "known_hashes", "get", "exists", "mark_seen_again", "mark_feed_seen_again", "record"]

#: Keys per ``IN (...)`` query: far below SQLite's parameter limit.
_CHUNK = 500


@dataclass(frozen=True)
class SeenItem:
    content_hash: str
    rules: tuple[str, ...]


def known_hashes(db: Database, keys: Sequence[str]) -> dict[str, str]:
    """Content hashes already recorded for these item keys."""
    known: dict[str, str] = {}
    for start in range(0, len(keys), _CHUNK):
        chunk = keys[start:start + _CHUNK]
        for row in db.all(f"SELECT key, content_hash FROM items WHERE key IN ({placeholders(chunk)})", chunk):
            known[row["key"]] = row["content_hash"]
    return known


def get(db: Database, key: str) -> SeenItem | None:
    row = db.one("SELECT content_hash, rules FROM items WHERE key = ?", (key,))
    if row is None:
        return None
    return SeenItem(row["content_hash"], tuple(json.loads(row["rules"])))


def exists(db: Database, key: str) -> bool:
    return db.one("SELECT 1 AS found FROM items WHERE key = ?", (key,)) is not None


def mark_seen_again(db: Database, key: str, now: float) -> None:
    db.execute("UPDATE items SET last_seen = ? WHERE key = ?", (now, key))


def mark_feed_seen_again(db: Database, feed: str, since: float, now: float) -> None:
    """Every item the feed's last processed body carried (``last_seen >= since``) is seen again."""
    db.execute("UPDATE items SET last_seen = ? WHERE feed = ? AND last_seen >= ?", (now, feed, since))


def record(db: Database, *, key: str, feed: str, content_hash: str, title: str, link: str | None,
           story_id: int | None, rules: Sequence[str], now: float) -> None:
    """Insert or update an item's seen mark (its first feed and first_seen are kept)."""
    db.execute(
        "INSERT INTO items (key, feed, content_hash, title, link, story_id, rules, first_seen, last_seen) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT(key) DO UPDATE SET content_hash = excluded.content_hash, title = excluded.title, "
        "link = excluded.link, story_id = COALESCE(excluded.story_id, items.story_id), "
        "rules = excluded.rules, last_seen = excluded.last_seen",
        (key, feed, content_hash, title, link, story_id, json.dumps(sorted(rules)), now, now))
