"""Keep the state bounded over months: prune old rows, checkpoint the WAL.

What is never deleted, whatever its age, because deleting it would lose or
repeat an alert:

* outbox rows still ``pending`` or ``sending``, and their alerts;
* an item still being seen in its feed (age counts from ``last_seen``, so a
  long-lived item is not forgotten and re-alerted);
* a story that a kept item still points to, and an alert whose story is kept
  (``UNIQUE(story_id, rule_id)`` is what stops a second alert for it).

Deletes run in small ``BEGIN IMMEDIATE`` batches so the write lock is held for
milliseconds; story_items go with their story and outbox rows with their
alert through ``ON DELETE CASCADE``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from monitor.state.db import Database, Params

__all__ = ["PruneReport", "prune", "checkpoint"]

_FINISHED = "('sent', 'dead')"
_UNFINISHED = "('pending', 'sending')"


@dataclass(frozen=True)
class PruneReport:
    """Rows deleted by one ``prune``, per table."""

    items: int = 0
    stories: int = 0
    alerts: int = 0
    outbox: int = 0

    @property
    def total(self) -> int:
        return self.items + self.stories + self.alerts + self.outbox

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def prune(db: Database, cutoff: float, batch: int) -> PruneReport:
    """Delete what is older than ``cutoff`` (unix seconds), ``batch`` rows per transaction."""
    items = _delete_batches(db, batch, "items", "key", "last_seen < ?", (cutoff,))
    outbox = _delete_batches(
        db, batch, "outbox", "id",
        f"state IN {_FINISHED} AND COALESCE(sent_at, created) < ? AND "
        "(alert_id IS NULL OR alert_id IN (SELECT id FROM alerts WHERE created < ?))",
        (cutoff, cutoff))
    stories = _delete_batches(
        db, batch, "stories", "id",
        "updated < ? AND NOT EXISTS (SELECT 1 FROM items i WHERE i.story_id = stories.id) "
        "AND NOT EXISTS (SELECT 1 FROM alerts a JOIN outbox o ON o.alert_id = a.id "
        f"WHERE a.story_id = stories.id AND o.state IN {_UNFINISHED})",
        (cutoff,))
    alerts = _delete_batches(
        db, batch, "alerts", "id",
        "created < ? AND NOT EXISTS (SELECT 1 FROM stories s WHERE s.id = alerts.story_id) "
        f"AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.alert_id = alerts.id AND o.state IN {_UNFINISHED})",
        (cutoff,))
    return PruneReport(items=items, stories=stories, alerts=alerts, outbox=outbox)


def _delete_batches(db: Database, batch: int, table: str, key: str, where: str, params: Params) -> int:
    total = 0
    sql = f"DELETE FROM {table} WHERE {key} IN (SELECT {key} FROM {table} WHERE {where} LIMIT {int(batch)})"
    while True:
        with db.transaction():
            deleted = db.execute(sql, params).rowcount
        total += deleted
        if deleted < batch:
            return total


@dataclass(frozen=True)
class CheckpointResult:
    complete: bool  # False: a reader was still active, the WAL keeps its size until the next run
    wal_bytes: int


def checkpoint(db: Database, wait_ms: int) -> CheckpointResult:
    """Truncate SQLite's write-ahead log, waiting at most ``wait_ms`` for readers (not inside a
    transaction). Without it one long-lived reader lets the WAL grow without limit
    (reliability-findings D.33). PostgreSQL manages its own WAL: nothing to do."""
    complete = db.checkpoint(wait_ms)
    return CheckpointResult(complete, db.wal_bytes())
