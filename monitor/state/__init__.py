"""State: every SQL statement of the project, and nothing else.

One module per group of tables, each a set of typed functions that take a
``Database`` and the project's own values and return them:

    db.py         the connection, transactions, the backend's quirks; SQLite
    postgres.py   the PostgreSQL backend, for several instances on one database
    schema.py     versioned migrations (refuse unversioned or newer databases)
    feeds.py      per-feed validators, health and schedule
    items.py      the "seen" mark of every item
    stories.py    stories and the items that report them
    alerts.py     one alert per (story, rule)
    outbox.py     the crash-safe delivery queue
    silences.py   "send nothing that matches this until then"
    meta.py       facts about the state itself
    retention.py  pruning and WAL checkpoints

May import: ``monitor.errors`` only. Nothing outside this package writes SQL.
"""

from __future__ import annotations

from pathlib import Path

from monitor.state.db import Database, StateError, connect_sqlite, is_url
from monitor.state.schema import SCHEMA_VERSION, migrate

__all__ = ["Database", "StateError", "SCHEMA_VERSION", "connect", "open_state", "open_readonly"]


def connect(target: str | Path, *, readonly: bool = False, timeout: float = 10.0) -> Database:
    """Open the state: a SQLite file path, or a ``postgresql://`` URL.

    ``readonly`` is for the CLI reading while the daemon runs: WAL lets it read
    without blocking the writer. It never uses ``immutable`` (stale reads).
    """
    if is_url(target):
        from monitor.state.postgres import connect_postgres

        return connect_postgres(str(target), readonly=readonly, timeout=timeout)
    return connect_sqlite(Path(target), readonly=readonly, timeout=timeout)


def open_state(target: str | Path) -> Database:
    """Open (creating or migrating) the read-write state: a SQLite path or a ``postgresql://`` URL."""
    db = connect(target)
    try:
        migrate(db)
    except BaseException:
        db.close()
        raise
    return db


def open_readonly(target: str | Path) -> Database:
    """Open the state for reading while the daemon runs (``monitor status``, ``feeds``, ``alerts``)."""
    return connect(target, readonly=True)
