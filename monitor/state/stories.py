"""The ``stories`` and ``story_items`` tables: one event, the items that report it; and the
story index that lives beside them, so that every daemon instance on one database finds the
story another created a second earlier:

* ``story_members``: each folded item's content (shingle hashes), ``story_bands``: the LSH band
  keys they are found by;
* ``story_sentences``: the content sentences of each story (stock text is what unrelated
  stories share), ``feed_sentences``: the sentences learned as each feed's furniture.

Only lookups and records: deciding which story an item belongs to is
``monitor.stories``. "Live" stories (updated after ``cutoff``) are the only
ones a new item can join.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from monitor.state.db import Database, Row, placeholders

__all__ = ["StorySource", "StoredMember", "ExactMatch", "exact_match", "story_of_item", "touch", "live_by_link",
           "live_by_text_hash", "create",
           "add_item", "sources", "candidate_members", "add_member", "drop_members",
           "add_story_sentences", "stories_with_sentences", "members_of_stories", "feed_furniture",
           "remember_furniture", "forget_furniture", "prune_index", "live_count", "merge"]


@dataclass(frozen=True)
class StorySource:
    """One outlet's copy of a story, as a message lists it."""

    feed: str
    title: str | None
    link: str | None


# The exact lookups, each on its own (tests, the eval baseline) and together (``exact_match``).
_OWN_STORY = "SELECT story_id FROM story_items WHERE item_key = ? ORDER BY added LIMIT 1"  # (item_key)
_LIVE_BY_LINK = ("SELECT si.story_id FROM story_items si JOIN stories s ON s.id = si.story_id "
                 "WHERE si.link = ? AND s.updated >= ? ORDER BY s.updated DESC LIMIT 1")  # (link, cutoff)
_LIVE_BY_TEXT = ("SELECT id FROM stories WHERE text_hash = ? AND updated >= ? "
                 "ORDER BY updated DESC LIMIT 1")  # (text_hash, cutoff)


def story_of_item(db: Database, item_key: str) -> int | None:
    """The story this very item joined earlier (a re-poll or an edit), whatever its age."""
    value = db.scalar(_OWN_STORY, (item_key,))
    return int(value) if value is not None else None


@dataclass(frozen=True)
class ExactMatch:
    """The stories an item's exact keys point at: its own (it was seen before, whatever its
    age), the live story of its canonical link, the live story of its text hash."""

    own: int | None
    by_link: int | None
    by_text: int | None


def exact_match(db: Database, item_key: str, link: str | None, text_hash: str, cutoff: float) -> ExactMatch:
    """The three exact lookups in one statement (one round trip per item instead of three)."""
    row = db.one(f"SELECT ({_OWN_STORY}) AS own, ({_LIVE_BY_LINK}) AS by_link, ({_LIVE_BY_TEXT}) AS by_text",
                 (item_key, link, cutoff, text_hash, cutoff))
    assert row is not None  # a SELECT of scalar subqueries always has its one row

    def value(name: str) -> int | None:
        return int(row[name]) if row[name] is not None else None

    return ExactMatch(value("own"), value("by_link"), value("by_text"))


def touch(db: Database, story_id: int, now: float) -> None:
    db.execute(f"UPDATE stories SET updated = {db.greatest('updated', '?')} WHERE id = ?", (now, story_id))


def live_by_link(db: Database, link: str, cutoff: float) -> int | None:
    value = db.scalar(_LIVE_BY_LINK, (link, cutoff))
    return int(value) if value is not None else None


def live_by_text_hash(db: Database, text_hash: str, cutoff: float) -> int | None:
    value = db.scalar(_LIVE_BY_TEXT, (text_hash, cutoff))
    return int(value) if value is not None else None


def create(db: Database, *, now: float, text_hash: str, title: str, shingles: int) -> int:
    """A new story (its ``minhash`` column, from before schema step 6, stays empty)."""
    return db.insert_id(
        "INSERT INTO stories(created, updated, text_hash, title, sources, shingles) VALUES (?, ?, ?, ?, 1, ?)",
        (now, now, text_hash, title, shingles))


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


# -- the cluster index (schema step 6): members, LSH bands, sentences, furniture ---------

@dataclass(frozen=True)
class StoredMember:
    """A member of a live story found by the band index: its content shingles (sorted uint32
    bytes), its content sentences (int64 hashes, bytes) and how many of the item's band keys
    it shares."""

    id: int
    story_id: int
    feed: str
    shingles: bytes
    sentences: bytes
    hits: int


def candidate_members(db: Database, keys: Sequence[int], *, min_hits: int, cutoff: float,
                      limit: int) -> list[StoredMember]:
    """Members of live stories sharing at least ``min_hits`` of ``keys``, most shared first.

    Two steps: the band postings alone (an index range per key, no row read), then the few
    members that pass, with their blobs and their story's liveness.
    """
    if not keys:
        return []
    hits = {int(r["member_id"]): int(r["hits"]) for r in db.all(
        f"SELECT member_id, count(*) AS hits FROM story_bands WHERE key IN ({placeholders(keys)}) "
        f"GROUP BY member_id HAVING count(*) >= ?", (*keys, min_hits))}
    if not hits:
        return []
    best = sorted(hits, key=lambda m: (-hits[m], m))[:limit]
    rows = db.all(f"SELECT {_MEMBER_COLUMNS} FROM story_members m JOIN stories s ON s.id = m.story_id "
                  f"WHERE m.id IN ({placeholders(best)}) AND s.updated >= ?", (*best, cutoff))
    found = [_member(r, hits[int(r["id"])]) for r in rows]
    return sorted(found, key=lambda m: (-m.hits, m.id))


def add_member(db: Database, *, story_id: int, item_key: str, feed: str, now: float, shingles: bytes,
               sentences: bytes, band_keys: Sequence[int]) -> int:
    """Store an item's content in its story and index it under ``band_keys``."""
    member_id = db.insert_id(
        "INSERT INTO story_members(story_id, item_key, feed, added, shingles, sentences, bands) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (story_id, item_key, feed, now, shingles, sentences, array("i", band_keys).tobytes()))
    db.executemany("INSERT INTO story_bands(key, member_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
                   [(key, member_id) for key in band_keys])
    return member_id


def drop_members(db: Database, member_ids: Sequence[int]) -> None:
    """Delete members and their band keys (read back from the member row)."""
    if not member_ids:
        return
    marks = placeholders(member_ids)
    bands: list[tuple[int, int]] = []
    for row in db.all(f"SELECT id, bands FROM story_members WHERE id IN ({marks})", member_ids):
        keys = array("i")
        keys.frombytes(bytes(row["bands"]))
        bands += [(key, int(row["id"])) for key in keys]
    db.executemany("DELETE FROM story_bands WHERE key = ? AND member_id = ?", bands)
    db.execute(f"DELETE FROM story_members WHERE id IN ({marks})", member_ids)


def add_story_sentences(db: Database, story_id: int, hashes: Iterable[int]) -> None:
    db.executemany("INSERT INTO story_sentences(hash, story_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
                   [(h, story_id) for h in hashes])


def stories_with_sentences(db: Database, hashes: Sequence[int], most: int) -> tuple[dict[int, set[int]], set[int]]:
    """For sentence hashes: the stories carrying each (live or not yet pruned), and apart the
    hashes more than ``most`` stories carry (stock text: their stories are not listed)."""
    carriers: dict[int, set[int]] = {}
    if not hashes:
        return carriers, set()
    for row in db.all(f"SELECT hash, story_id FROM story_sentences WHERE hash IN ({placeholders(hashes)}) LIMIT ?",
                      (*hashes, (most + 1) * len(hashes))):
        carriers.setdefault(int(row["hash"]), set()).add(int(row["story_id"]))
    widespread = {h for h, stories in carriers.items() if len(stories) > most}
    return {h: stories for h, stories in carriers.items() if h not in widespread}, widespread


def members_of_stories(db: Database, story_ids: Sequence[int], cutoff: float, per_story: int) -> list[StoredMember]:
    """The newest ``per_story`` members of each live story (for stories found by a shared sentence)."""
    if not story_ids:
        return []
    # the newest ids ranked per story first, so only the members kept have their blobs read
    newest = (f"SELECT id FROM (SELECT m.id AS id, row_number() OVER (PARTITION BY m.story_id ORDER BY m.id DESC) "
              f"AS n FROM story_members m JOIN stories s ON s.id = m.story_id "
              f"WHERE m.story_id IN ({placeholders(story_ids)}) AND s.updated >= ?) ranked WHERE n <= ?")
    rows = db.all(f"SELECT {_MEMBER_COLUMNS} FROM story_members m WHERE m.id IN ({newest}) ORDER BY m.id DESC",
                  (*story_ids, cutoff, per_story))
    return [_member(r, 0) for r in rows]


_MEMBER_COLUMNS = "m.id AS id, m.story_id AS story_id, m.feed AS feed, m.shingles AS shingles, m.sentences AS sentences"


def _member(row: Row, hits: int) -> StoredMember:
    return StoredMember(int(row["id"]), int(row["story_id"]), row["feed"], bytes(row["shingles"]),
                        bytes(row["sentences"]), hits)


def feed_furniture(db: Database, feed: str, hashes: Sequence[int]) -> dict[int, float]:
    """Of these sentence hashes, the ones learned as this feed's furniture, with when each was last seen."""
    if not hashes:
        return {}
    return {int(r["hash"]): float(r["last_seen"]) for r in db.all(
        f"SELECT hash, last_seen FROM feed_sentences WHERE feed = ? AND hash IN ({placeholders(hashes)})",
        (feed, *hashes))}


def remember_furniture(db: Database, feed: str, hashes: Iterable[int], now: float) -> None:
    db.executemany("INSERT INTO feed_sentences(feed, hash, last_seen) VALUES (?, ?, ?) "
                   "ON CONFLICT(feed, hash) DO UPDATE SET last_seen = excluded.last_seen",
                   [(feed, h, now) for h in hashes])


def forget_furniture(db: Database, *, before: float, limit: int) -> int:
    """Forget furniture not seen since ``before`` (at most ``limit`` rows)."""
    return db.execute(
        "DELETE FROM feed_sentences WHERE (feed, hash) IN (SELECT feed, hash FROM feed_sentences "
        "WHERE last_seen < ? LIMIT ?)", (before, limit)).rowcount


def prune_index(db: Database, cutoff: float, limit: int) -> int:
    """Forget members (and their bands and sentences) of stories no longer live; returns members dropped."""
    rows = db.all(
        "SELECT m.id AS id, m.story_id AS story_id FROM story_members m LEFT JOIN stories s ON s.id = m.story_id "
        "WHERE m.added < ? AND (s.id IS NULL OR s.updated < ?) ORDER BY m.added LIMIT ?", (cutoff, cutoff, limit))
    drop_members(db, [int(r["id"]) for r in rows])
    story_ids = sorted({int(r["story_id"]) for r in rows})
    if story_ids:
        db.execute(f"DELETE FROM story_sentences WHERE story_id IN ({placeholders(story_ids)}) AND story_id NOT IN "
                   f"(SELECT id FROM stories WHERE updated >= ?)", (*story_ids, cutoff))
    return len(rows)


def live_count(db: Database, cutoff: float) -> int:
    return int(db.scalar("SELECT count(*) FROM stories WHERE updated >= ?", (cutoff,)))


# -- merging two stories a later item shows to be one ------------------------------------

#: How far a delivery row got; other states (dead, silenced) rank lowest.
_PROGRESS = {"sent": 3, "sending": 2, "pending": 1}


def merge(db: Database, survivor: int, absorbed: Sequence[int]) -> None:
    """Fold the ``absorbed`` stories into ``survivor``: story items and seen items, members,
    sentences and alerts; the survivor's sources are recounted, the absorbed rows deleted.

    Alerts keep ``UNIQUE (story_id, rule_id)``: of two alerts for one rule the earlier stays,
    and takes over the other's delivery rows on channels where it has none. Where both have a
    row (same channel and kind) the one further along stays (sent, then sending, then
    pending): a message already sent is never queued again, and a pending duplicate of it is
    dropped. The outbox rows reach the story through their alert, so they follow it.
    """
    others = [s for s in absorbed if s != survivor]
    if not others:
        return
    everyone = [survivor, *others]
    marks = placeholders(others)
    # story_items: an item in two of the stories keeps one row (the survivor's, else the oldest story's).
    db.execute(
        f"DELETE FROM story_items WHERE story_id IN ({marks}) AND EXISTS (SELECT 1 FROM story_items o "
        f"WHERE o.item_key = story_items.item_key AND (o.story_id = ? OR (o.story_id IN ({marks}) "
        f"AND o.story_id < story_items.story_id)))", (*others, survivor, *others))
    db.execute(f"UPDATE story_items SET story_id = ? WHERE story_id IN ({marks})", (survivor, *others))
    db.execute(f"UPDATE items SET story_id = ? WHERE story_id IN ({marks})", (survivor, *others))
    db.execute(f"UPDATE story_members SET story_id = ? WHERE story_id IN ({marks})", (survivor, *others))
    db.execute(f"INSERT INTO story_sentences(hash, story_id) SELECT DISTINCT hash, CAST(? AS BIGINT) "
               f"FROM story_sentences WHERE story_id IN ({marks}) ON CONFLICT DO NOTHING", (survivor, *others))
    db.execute(f"DELETE FROM story_sentences WHERE story_id IN ({marks})", others)
    _merge_alerts(db, survivor, everyone)
    every = placeholders(everyone)
    db.execute(
        f"UPDATE stories SET updated = (SELECT max(updated) FROM stories WHERE id IN ({every})), "
        f"created = (SELECT min(created) FROM stories WHERE id IN ({every})), "
        f"sources = (SELECT count(DISTINCT feed) FROM story_items WHERE story_id = ?) WHERE id = ?",
        (*everyone, *everyone, survivor, survivor))
    db.execute(f"DELETE FROM stories WHERE id IN ({marks})", others)


def _merge_alerts(db: Database, survivor: int, stories: Sequence[int]) -> None:
    kept: dict[str, int] = {}
    for row in db.all(f"SELECT id, rule_id FROM alerts WHERE story_id IN ({placeholders(stories)}) "
                      f"ORDER BY created, id", stories):
        alert_id, rule = int(row["id"]), str(row["rule_id"])
        if rule not in kept:
            kept[rule] = alert_id
            continue
        _fold_alert(db, keep=kept[rule], drop=alert_id)
    db.execute(f"UPDATE alerts SET story_id = ? WHERE story_id IN ({placeholders(stories)})", (survivor, *stories))


def _fold_alert(db: Database, *, keep: int, drop: int) -> None:
    """Move ``drop``'s delivery rows to ``keep`` (the further along of two rows for one channel
    and kind stays), then delete ``drop``."""
    have = {(r["channel"], r["kind"]): (int(r["id"]), str(r["state"])) for r in db.all(
        "SELECT id, channel, kind, state FROM outbox WHERE alert_id = ?", (keep,))}
    for row in db.all("SELECT id, channel, kind, state FROM outbox WHERE alert_id = ?", (drop,)):
        mine = have.get((row["channel"], row["kind"]))
        if mine is not None and _PROGRESS.get(mine[1], 0) >= _PROGRESS.get(str(row["state"]), 0):
            db.execute("DELETE FROM outbox WHERE id = ?", (int(row["id"]),))
            continue
        if mine is not None:
            db.execute("DELETE FROM outbox WHERE id = ?", (mine[0],))
        db.execute("UPDATE outbox SET alert_id = ? WHERE id = ?", (keep, int(row["id"])))
    db.execute("DELETE FROM alerts WHERE id = ?", (drop,))
