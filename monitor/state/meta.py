"""The ``meta`` table: a few facts about the state itself (when it was created, when the daemon started)."""

from __future__ import annotations

from monitor.state.db import Database

__all__ = ["get", "put"]


def get(db: Database, key: str) -> str | None:
    value = db.scalar("SELECT value FROM meta WHERE key = ?", (key,))
    return str(value) if value is not None else None


def put(db: Database, key: str, value: str) -> None:
    """Set ``key`` (in its own transaction)."""
    with db.transaction():
        db.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                   (key, value))
