"""The ``feeds`` table: one row per configured feed, keyed by its config name.

What a feed's next poll needs (validators, a permanent redirect, the hash of
the last processed body) and what ``monitor feeds`` shows (last success, last
error, counters, next poll).
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.state.db import Database, Row

__all__ = ["FeedRecord", "Lease", "get", "sync_url", "take_lease", "record_success", "record_error",
           "record_schedule", "release_leases", "leases_by_owner", "all_feeds", "failing", "last_poll"]


@dataclass(frozen=True)
class FeedRecord:
    """A feed's row as the pipeline, the scheduler and the CLI read it."""

    name: str
    url: str
    etag: str | None = None
    last_modified: str | None = None
    redirected_url: str | None = None
    body_hash: str | None = None
    last_full_fetch_at: float | None = None
    last_poll_at: float | None = None
    last_success_at: float | None = None
    last_error: str | None = None
    last_error_kind: str | None = None
    last_error_at: float | None = None
    consecutive_errors: int = 0
    interval: float | None = None
    next_poll_at: float | None = None
    items_seen: int = 0
    alerts_created: int = 0
    lease_owner: str | None = None
    lease_until: float | None = None

    @classmethod
    def from_row(cls, row: Row) -> FeedRecord:
        return cls(**{name: row[name] for name in _COLUMNS})


_COLUMNS = tuple(FeedRecord.__dataclass_fields__)
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM feeds"


def get(db: Database, name: str) -> FeedRecord | None:
    row = db.one(f"{_SELECT} WHERE name = ?", (name,))
    return FeedRecord.from_row(row) if row is not None else None


def sync_url(db: Database, name: str, url: str) -> FeedRecord | None:
    """The feed's row; when the user changed its URL, validators and redirects of the old one are forgotten."""
    record = get(db, name)
    if record is not None and record.url != url:
        with db.transaction():
            db.execute("UPDATE feeds SET url = ?, etag = NULL, last_modified = NULL, redirected_url = NULL, "
                       "body_hash = NULL WHERE name = ?", (url, name))
        record = get(db, name)
    return record


def _ensure(db: Database, name: str, url: str) -> None:
    db.execute("INSERT INTO feeds (name, url) VALUES (?, ?) ON CONFLICT(name) DO NOTHING", (name, url))


def record_success(db: Database, name: str, url: str, *, polled_at: float, succeeded_at: float,
                   etag: str | None, last_modified: str | None, permanent_redirect: str | None,
                   body_hash: str | None = None, new_items: int = 0, alerts: int = 0) -> None:
    """A poll that worked. ``body_hash`` is given when the body was processed in full
    (it also marks the time of that full fetch). Runs in the caller's transaction."""
    _ensure(db, name, url)
    db.execute(
        "UPDATE feeds SET etag = COALESCE(?, etag), last_modified = COALESCE(?, last_modified), "
        "redirected_url = COALESCE(?, redirected_url), last_poll_at = ?, last_success_at = ?, "
        "consecutive_errors = 0, items_seen = items_seen + ?, alerts_created = alerts_created + ? WHERE name = ?",
        (etag, last_modified, permanent_redirect, polled_at, succeeded_at, new_items, alerts, name))
    if body_hash is not None:
        db.execute("UPDATE feeds SET last_full_fetch_at = ?, body_hash = ? WHERE name = ?",
                   (polled_at, body_hash, name))


def record_error(db: Database, name: str, url: str, *, polled_at: float, error: str, kind: str,
                 at: float) -> None:
    """A poll that failed (in its own transaction): the message is stored as given, already redacted."""
    with db.transaction():
        _ensure(db, name, url)
        db.execute("UPDATE feeds SET last_poll_at = ?, last_error = ?, last_error_kind = ?, last_error_at = ?, "
                   "consecutive_errors = consecutive_errors + 1 WHERE name = ?",
                   (polled_at, error, kind, at, name))


@dataclass(frozen=True)
class Lease:
    """The answer to "may this instance poll the feed now?".

    ``taken``: yes, until ``until``. Otherwise ``retry_at`` says when to ask
    again: when the feed's next poll is due, or when another instance's lease
    runs out (an instance that died loses its feeds then).
    """

    taken: bool
    until: float | None = None
    retry_at: float | None = None
    holder: str | None = None


def take_lease(db: Database, name: str, url: str, *, owner: str, now: float, seconds: float,
               when_due: bool = True) -> Lease:
    """Lease the feed's next poll to ``owner`` for ``seconds`` if no live lease of another
    instance holds it and (``when_due``) its next poll is due.

    One conditional UPDATE decides, so two instances asking at the same moment
    cannot both win: SQLite runs write transactions one at a time, and
    PostgreSQL re-checks the WHERE clause on the row it locked for the update.
    """
    until = now + seconds
    with db.transaction():
        _ensure(db, name, url)
        due = "AND (next_poll_at IS NULL OR next_poll_at <= ?)" if when_due else ""
        taken = db.execute(
            f"UPDATE feeds SET lease_owner = ?, lease_until = ? WHERE name = ? "
            f"AND (lease_owner IS NULL OR lease_owner = ? OR lease_until IS NULL OR lease_until < ?) {due}",
            (owner, until, name, owner, now, *((now,) if when_due else ()))).rowcount == 1
        if taken:
            return Lease(True, until=until)
        record = get(db, name)
    assert record is not None
    held = record.lease_owner not in (None, owner) and (record.lease_until or 0) >= now
    retry = max(record.next_poll_at or now, record.lease_until if held and record.lease_until else now)
    return Lease(False, retry_at=retry, holder=record.lease_owner if held else None)


def record_schedule(db: Database, name: str, url: str, interval: float, next_poll_at: float,
                    owner: str | None = None) -> None:
    """When the feed is polled next (shown by ``monitor feeds``), in its own transaction; the
    lease ``owner`` held for this poll is released in the same statement."""
    with db.transaction():
        _ensure(db, name, url)
        db.execute("UPDATE feeds SET interval = ?, next_poll_at = ?, "
                   "lease_owner = CASE WHEN lease_owner = ? THEN NULL ELSE lease_owner END, "
                   "lease_until = CASE WHEN lease_owner = ? THEN NULL ELSE lease_until END WHERE name = ?",
                   (interval, next_poll_at, owner, owner, name))


def release_leases(db: Database, owner: str) -> int:
    """Give up every feed lease of ``owner`` (a clean stop: the others need not wait for the expiry)."""
    with db.transaction():
        return db.execute("UPDATE feeds SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = ?",
                          (owner,)).rowcount


def leases_by_owner(db: Database, now: float) -> dict[str, int]:
    """Live feed leases per instance (``monitor status``, ``/metrics``)."""
    return {row["owner"]: int(row["n"]) for row in db.all(
        "SELECT lease_owner AS owner, count(*) AS n FROM feeds WHERE lease_owner IS NOT NULL AND lease_until >= ? "
        "GROUP BY lease_owner", (now,))}


def all_feeds(db: Database) -> dict[str, FeedRecord]:
    return {row["name"]: FeedRecord.from_row(row) for row in db.all(_SELECT)}


def failing(db: Database, threshold: int) -> list[str]:
    """Names of feeds with at least ``threshold`` errors in a row."""
    return [row["name"] for row in db.all(
        "SELECT name FROM feeds WHERE consecutive_errors >= ? ORDER BY name", (threshold,))]


def last_poll(db: Database) -> float | None:
    value = db.scalar("SELECT max(last_poll_at) FROM feeds")
    return float(value) if value is not None else None
