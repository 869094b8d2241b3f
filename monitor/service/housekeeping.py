"""Housekeeping: keep the state database bounded over months of polling.

Two jobs, run every ``interval_hours`` by the daemon (and once at start):

* :func:`prune` deletes what is older than ``retention_days``: seen items,
  stories, and alerts whose deliveries are all finished (``sent``/``dead``),
  with those outbox rows. It deletes in small ``BEGIN IMMEDIATE`` batches so
  the write lock is held for milliseconds, never long enough to stall a poll
  or the delivery worker. Freed pages are reused by SQLite, so the file stops
  growing once the retention window is full.
* :func:`checkpoint` runs ``wal_checkpoint(TRUNCATE)``: without it, one
  long-lived reader lets the WAL grow without limit (reliability-findings D.33).

What is never deleted, whatever its age, because deleting it would lose or
repeat an alert:

* outbox rows still ``pending`` or ``sending``, and their alerts;
* an item still being seen in its feed (age counts from ``last_seen``, so a
  long-lived item is not forgotten and re-alerted);
* a story that a kept item still points to, and an alert whose story is kept
  (``UNIQUE(story_id, rule_id)`` is what stops a second alert for it).
"""

from __future__ import annotations

import logging
import os
import sqlite3
from dataclasses import asdict, dataclass

from pydantic import BaseModel, ConfigDict, Field

from monitor import metrics
from monitor.state.db import transaction

log = logging.getLogger(__name__)

__all__ = ["HousekeepingSettings", "PruneReport", "prune", "checkpoint", "wal_size"]

CHECKPOINT_WAIT_MS = 500

_FINISHED = "('sent', 'dead')"
_UNFINISHED = "('pending', 'sending')"


class HousekeepingSettings(BaseModel):
    """``housekeeping:`` section of the config."""

    model_config = ConfigDict(extra="forbid")

    retention_days: float = Field(30, gt=0, le=3650, description="Age after which seen items, stories "
                                  "and delivered alerts are deleted.")
    interval_hours: float = Field(6, gt=0, le=24 * 7, description="How often prune and checkpoint run.")
    batch_size: int = Field(500, ge=1, le=100_000, description="Rows deleted per write transaction.")


@dataclass(frozen=True)
class PruneReport:
    """Rows deleted by one :func:`prune`, per table."""

    items: int = 0
    stories: int = 0
    alerts: int = 0
    outbox: int = 0

    @property
    def total(self) -> int:
        return self.items + self.stories + self.alerts + self.outbox

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def prune(conn: sqlite3.Connection, settings: HousekeepingSettings, now: float) -> PruneReport:
    """Delete rows older than ``settings.retention_days`` before ``now`` (unix seconds)."""
    cutoff = now - settings.retention_days * 86400
    batch = settings.batch_size
    # An index for the age test below (items only has one on first_seen).
    conn.execute("CREATE INDEX IF NOT EXISTS items_last_seen ON items(last_seen)")

    items = _delete_batches(conn, batch, "items", "last_seen < ?", (cutoff,))
    # Finished deliveries of old alerts, and old ops messages without an alert.
    outbox = _delete_batches(
        conn, batch, "outbox",
        f"state IN {_FINISHED} AND COALESCE(sent_at, created) < ? AND "
        "(alert_id IS NULL OR alert_id IN (SELECT id FROM alerts WHERE created < ?))",
        (cutoff, cutoff))
    stories = _delete_batches(
        conn, batch, "stories",
        "updated < ? AND NOT EXISTS (SELECT 1 FROM items i WHERE i.story_id = stories.id) "
        "AND NOT EXISTS (SELECT 1 FROM alerts a JOIN outbox o ON o.alert_id = a.id "
        f"WHERE a.story_id = stories.id AND o.state IN {_UNFINISHED})",
        (cutoff,))
    alerts = _delete_batches(
        conn, batch, "alerts",
        "created < ? AND NOT EXISTS (SELECT 1 FROM stories s WHERE s.id = alerts.story_id) "
        f"AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.alert_id = alerts.id AND o.state IN {_UNFINISHED})",
        (cutoff,))
    report = PruneReport(items=items, stories=stories, alerts=alerts, outbox=outbox)
    for table, count in report.as_dict().items():
        if count:
            metrics.PRUNED.labels(table=table).inc(count)
    if report.total:
        log.info("housekeeping: pruned %s (older than %g days)",
                 ", ".join(f"{n} {t}" for t, n in report.as_dict().items() if n), settings.retention_days)
    return report


def _delete_batches(conn: sqlite3.Connection, batch: int, table: str, where: str, params: tuple) -> int:
    """DELETE ... WHERE in transactions of at most ``batch`` rows; returns the count.

    story_items go with their story and outbox rows with their alert through
    ``ON DELETE CASCADE`` (``store.connect`` turns foreign keys on).
    """
    total = 0
    sql = f"DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} WHERE {where} LIMIT {int(batch)})"
    while True:
        with transaction(conn):
            deleted = conn.execute(sql, params).rowcount
        total += deleted
        if deleted < batch:
            return total


def wal_size(conn: sqlite3.Connection) -> int:
    """Bytes in the main database's ``-wal`` file (0 if none or in memory)."""
    try:
        row = conn.execute("PRAGMA database_list").fetchone()
        path = row[2] if row else ""
        return os.path.getsize(path + "-wal") if path else 0
    except (OSError, sqlite3.Error):
        return 0


def checkpoint(conn: sqlite3.Connection) -> int:
    """``PRAGMA wal_checkpoint(TRUNCATE)``; returns the WAL size afterwards.

    A reader holding a transaction open makes the checkpoint partial (the
    WAL keeps its size); that is logged and retried at the next run, never
    an error. Do not call inside an open transaction.
    """
    try:
        # TRUNCATE waits (busy handler) for readers to finish; cap that wait so
        # a CLI holding a snapshot cannot stall the daemon for busy_timeout.
        previous = conn.execute("PRAGMA busy_timeout").fetchone()[0]
        conn.execute(f"PRAGMA busy_timeout={CHECKPOINT_WAIT_MS}")
        try:
            busy, _log_frames, _done = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            conn.execute(f"PRAGMA busy_timeout={int(previous)}")
        if busy:
            log.info("housekeeping: WAL checkpoint incomplete, a reader is still active; will retry")
    except sqlite3.Error as exc:
        log.warning("housekeeping: WAL checkpoint failed: %s", exc)
    size = wal_size(conn)
    metrics.WAL_BYTES.set(size)
    return size
