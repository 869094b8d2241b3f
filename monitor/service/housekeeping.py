"""Housekeeping: keep the state database bounded over months of polling.

Two jobs, run every ``interval_hours`` by the daemon (and once at start):
``prune`` deletes seen items, stories and finished alerts older than
``retention_days`` (what must never be deleted, and why, is in
``monitor.state.retention``); ``checkpoint`` truncates the WAL, which one
long-lived reader would otherwise let grow without limit.
"""

from __future__ import annotations

import logging

from monitor import metrics
from monitor.service.settings import HousekeepingSettings
from monitor.state import retention
from monitor.state.db import Database, StateError
from monitor.state.retention import PruneReport

log = logging.getLogger(__name__)

__all__ = ["HousekeepingSettings", "PruneReport", "prune", "checkpoint"]

#: A CLI holding a snapshot must not stall the daemon for a whole busy_timeout.
CHECKPOINT_WAIT_MS = 500


def prune(db: Database, settings: HousekeepingSettings, now: float) -> PruneReport:
    """Delete rows older than ``settings.retention_days`` before ``now`` (unix seconds)."""
    report = retention.prune(db, now - settings.retention_days * 86400, settings.batch_size)
    for table, count in report.as_dict().items():
        if count:
            metrics.PRUNED.labels(table=table).inc(count)
    if report.total:
        log.info("housekeeping: pruned %s (older than %g days)",
                 ", ".join(f"{n} {t}" for t, n in report.as_dict().items() if n), settings.retention_days)
    return report


def checkpoint(db: Database) -> int:
    """Truncate the WAL; returns its size afterwards. Never raises for a busy or failing checkpoint."""
    try:
        result = retention.checkpoint(db, CHECKPOINT_WAIT_MS)
        if not result.complete:
            log.info("housekeeping: WAL checkpoint incomplete, a reader is still active; will retry")
        size = result.wal_bytes
    except StateError as exc:  # busy or failing: logged, retried at the next run
        log.warning("housekeeping: WAL checkpoint failed: %s", exc)
        size = db.wal_bytes()
    metrics.WAL_BYTES.set(size)
    return size
