"""The ``silences`` table: "send nothing that matches this until then" (``monitor silence``).

Like Alertmanager's silences: a silence has matchers (rule, entity, channel:
each one set must match, an unset one matches anything), a start and an end,
a comment and an author. It lives in the state, so it holds across restarts
and reloads, and the CLI adds or expires one while the daemon runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.state.db import Database, Row, placeholders

__all__ = ["Silence", "add", "active", "listing", "get", "expire", "held_back"]


@dataclass(frozen=True)
class Silence:
    id: int
    rule_id: str | None
    entity: str | None
    channel: str | None
    starts: float
    ends: float
    comment: str
    author: str
    created: float

    def is_active(self, now: float) -> bool:
        return self.starts <= now < self.ends


def _silence(row: Row) -> Silence:
    return Silence(int(row["id"]), row["rule_id"], row["entity"], row["channel"], float(row["starts"]),
                   float(row["ends"]), row["comment"], row["author"], float(row["created"]))


_COLUMNS = "id, rule_id, entity, channel, starts, ends, comment, author, created"


def add(db: Database, *, rule_id: str | None, entity: str | None, channel: str | None, starts: float, ends: float,
        comment: str, author: str, now: float) -> int:
    """A new silence (in its own transaction); at least one matcher must be set."""
    if rule_id is None and entity is None and channel is None:
        raise ValueError("a silence needs a rule, an entity or a channel")
    with db.transaction():
        return db.insert_id(
            "INSERT INTO silences(rule_id, entity, channel, starts, ends, comment, author, created) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (rule_id, entity, channel, starts, ends, comment, author, now))


def active(db: Database, now: float) -> list[Silence]:
    """Silences in force at ``now``, oldest first."""
    return [_silence(r) for r in db.all(
        f"SELECT {_COLUMNS} FROM silences WHERE ends > ? AND starts <= ? ORDER BY id", (now, now))]


def listing(db: Database, now: float, *, include_expired: bool = False) -> list[Silence]:
    """Silences not yet ended (and, with ``include_expired``, the ended ones too), newest first."""
    where = "" if include_expired else "WHERE ends > ?"
    return [_silence(r) for r in db.all(f"SELECT {_COLUMNS} FROM silences {where} ORDER BY id DESC",
                                        () if include_expired else (now,))]


def get(db: Database, silence_id: int) -> Silence | None:
    row = db.one(f"SELECT {_COLUMNS} FROM silences WHERE id = ?", (silence_id,))
    return _silence(row) if row is not None else None


def expire(db: Database, silence_id: int, now: float) -> bool:
    """End a silence now; False if there is none with that id still in force."""
    with db.transaction():
        return db.execute("UPDATE silences SET ends = ? WHERE id = ? AND ends > ?",
                          (now, silence_id, now)).rowcount == 1


def held_back(db: Database, silence_ids: list[int]) -> dict[int, int]:
    """How many deliveries each silence held back."""
    if not silence_ids:
        return {}
    return {int(r["silence_id"]): int(r["n"]) for r in db.all(
        f"SELECT silence_id, count(*) AS n FROM outbox WHERE silence_id IN ({placeholders(silence_ids)}) "
        "GROUP BY silence_id",
        silence_ids)}
