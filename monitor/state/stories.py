"""The ``stories`` and ``story_items`` tables: one event, the items that report it.

Only lookups and records: deciding which story an item belongs to is
``monitor.stories``. "Live" stories (updated after ``cutoff``) are the only
ones a new item can join.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from monitor.state.db import Database

__all__ = ["StorySource", "story_of_item", "touch", "live_by_link", "live_by_text_hash", "live_sketch",
           "live_sketches", "create", "add_item", "sources"]


@dataclass(frozen=True)
class StorySource:
    """One outlet's copy of a story, as a message lists it."""

    feed: str
    title: str | None
    link: str | None


def story_of_item(db: Database, item_key: str) -> int | None:
    """The story this very item joined earlier (a re-poll or an edit), whatever its age."""
    value = db.scalar("SELECT story_id FROM story_items WHERE item_key = ? ORDER BY added LIMIT 1", (item_key,))
    return int(value) if value is not None else None


def touch(db: Database, story_id: int, now: float) -> None:
    db.execute(f"UPDATE stories SET updated = {db.greatest('updated', '?')} WHERE id = ?", (now, story_id))


def live_by_link(db: Database, link: str, cutoff: float) -> int | None:
    value = db.scalar(
        "SELECT si.story_id FROM story_items si JOIN stories s ON s.id = si.story_id "
        "WHERE si.link = ? AND s.updated >= ? ORDER BY s.updated DESC LIMIT 1", (link, cutoff))
    return int(value) if value is not None else None


def live_by_text_hash(db: Database, text_hash: str, cutoff: float) -> int | None:
    value = db.scalar("SELECT id FROM stories WHERE text_hash = ? AND updated >= ? ORDER BY updated DESC LIMIT 1",
                      (text_hash, cutoff))
    return int(value) if value is not None else None


def live_sketch(db: Database, story_id: int, cutoff: float) -> bytes | None:
    """The stored MinHash of a live story (None: gone, expired, or too short to have one)."""
    value = db.scalar("SELECT minhash FROM stories WHERE id = ? AND updated >= ?", (story_id, cutoff))
    return bytes(value) if value is not None else None


def live_sketches(db: Database, cutoff: float) -> Iterator[tuple[int, bytes, float]]:
    """(id, MinHash, updated) of every live story that has a sketch (to rebuild an index)."""
    for row in db.all("SELECT id, minhash, updated FROM stories WHERE updated >= ? AND minhash IS NOT NULL",
                      (cutoff,)):
        yield int(row["id"]), bytes(row["minhash"]), float(row["updated"])


def create(db: Database, *, now: float, text_hash: str, sketch: bytes | None, title: str, shingles: int) -> int:
    return db.insert_id(
        "INSERT INTO stories(created, updated, text_hash, minhash, title, sources, shingles) "
        "VALUES (?, ?, ?, ?, ?, 1, ?)", (now, now, text_hash, sketch, title, shingles))


def add_item(db: Database, story_id: int, *, item_key: str, feed: str, link: str | None, title: str,
             now: float, new_story: bool = False) -> None:
    """Record the item in the story; a first item of a feed the story had not counts a source.

    ``sources`` is kept incrementally: recounting distinct feeds cost
    O(story size) per item, quadratic for a story many outlets carry.
    """
    added = db.execute(
        "INSERT INTO story_items(story_id, item_key, feed, link, title, added) VALUES (?, ?, ?, ?, ?, ?) "
        "ON CONFLICT(story_id, item_key) DO NOTHING", (story_id, item_key, feed, link, title, now)).rowcount == 1
    if new_story:
        return
    new_feed = added and db.one(
        "SELECT 1 AS found FROM story_items WHERE story_id = ? AND feed = ? AND item_key != ? LIMIT 1",
        (story_id, feed, item_key)) is None
    db.execute("UPDATE stories SET updated = ?, sources = sources + ? WHERE id = ?", (now, int(new_feed), story_id))


def sources(db: Database, story_id: int) -> list[StorySource]:
    """The story's items in the order they joined."""
    return [StorySource(row["feed"], row["title"], row["link"]) for row in db.all(
        "SELECT feed, title, link FROM story_items WHERE story_id = ? ORDER BY added, item_key", (story_id,))]
