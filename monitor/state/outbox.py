"""The ``outbox`` table: one row per message to send on one channel.

Why the crash-safety argument fits in this one module: a row is committed as
'sending' before the send (``claim``) and 'sent' after it (``mark_sent``);
'sending' found at start-up means "maybe sent" and is re-queued as a
possible repeat (``recover_inflight``). So after a kill -9 at most the message
in flight is sent again, and it says so; nothing is lost.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from monitor.state import stories
from monitor.state.db import Database, Row, placeholders

__all__ = ["Claimed", "HeadWaiting", "LastOfRule", "enqueue", "enqueue_notice", "last_for_rule",
           "recover_inflight", "claim", "next_due", "mark_parts", "mark_sent", "mark_retry", "mark_dead",
           "load_views", "depth", "counts", "sent_since", "retry_dead", "channels_of_alert"]


# -- written by routing (inside the pipeline's transaction) -------------------------

def enqueue(db: Database, *, alert_id: int, channel: str, kind: str, not_before: float, now: float,
            group_key: str | None = None) -> int | None:
    """One outbox row (UNIQUE per alert, channel and kind); None if it already exists."""
    row = db.one(
        "INSERT INTO outbox(alert_id, channel, kind, state, not_before, created, group_key) "
        "VALUES (?, ?, ?, 'pending', ?, ?, ?) ON CONFLICT(alert_id, channel, kind) DO NOTHING RETURNING id",
        (alert_id, channel, kind, not_before, now, group_key))
    return int(row["id"]) if row is not None else None


def enqueue_notice(db: Database, channel: str, text: str, now: float) -> int:
    """An operational message (feed down, reload failed) on ``channel``, in its own transaction."""
    with db.transaction():
        return db.insert_id("INSERT INTO outbox(alert_id, channel, kind, state, not_before, created, body) "
                            "VALUES (NULL, ?, 'notice', 'pending', ?, ?, ?)", (channel, now, now, text))


@dataclass(frozen=True)
class LastOfRule:
    """The latest alert row of a rule on a channel (for group_interval and cooldown)."""

    state: str
    not_before: float
    sent_at: float | None


def last_for_rule(db: Database, channel: str, rule_id: str) -> LastOfRule | None:
    row = db.one(
        "SELECT o.state AS state, o.not_before AS not_before, o.sent_at AS sent_at FROM outbox o "
        "JOIN alerts a ON a.id = o.alert_id WHERE o.channel = ? AND a.rule_id = ? AND o.kind = 'alert' "
        "ORDER BY o.not_before DESC, o.id DESC LIMIT 1", (channel, rule_id))
    if row is None:
        return None
    return LastOfRule(row["state"], float(row["not_before"]),
                      float(row["sent_at"]) if row["sent_at"] is not None else None)


def channels_of_alert(db: Database, alert_id: int) -> list[str]:
    """The channels an alert was queued on."""
    return [row["channel"] for row in db.all(
        "SELECT DISTINCT channel FROM outbox WHERE alert_id = ? AND kind = 'alert'", (alert_id,))]


# -- used by the delivery worker ------------------------------------------------------

@dataclass(frozen=True)
class Claimed:
    """Rows claimed together (one message), already committed as 'sending'."""

    ids: tuple[int, ...]
    channel: str
    attempts: int
    parts_sent: int
    possible_repeat: bool
    created: float


@dataclass(frozen=True)
class HeadWaiting:
    """The head of the channel's line is backing off until ``until``: the line waits (order is kept)."""

    until: float


def recover_inflight(db: Database) -> int:
    """At start-up: rows left 'sending' by a crash may have been sent; re-queue them marked as possible repeats."""
    with db.transaction():
        return db.execute("UPDATE outbox SET state = 'pending', possible_repeat = 1 WHERE state = 'sending'").rowcount


def _story(row: Row) -> int | None:
    return int(row["story_id"]) if row["kind"] == "alert" and row["story_id"] is not None else None


def claim(db: Database, channel: str, now: float, max_group: int = 20) -> Claimed | HeadWaiting | None:
    """Claim the head of ``channel``'s line and every row that goes out in the same message.

    One message per story: all due alert rows of the head's story on this
    channel (one row per rule that fired) are claimed with it. Rows that share
    the head's ``group_key`` (group_wait, cooldown slot, digest) come too, each
    with the rest of its own story; at most ``max_group`` stories per message
    (the head's story is never split). Follow-ups and notices go alone unless
    they share a group_key. None: nothing is due.
    """
    with db.transaction():
        head = db.one(
            "SELECT o.id AS id, o.group_key AS group_key, o.retry_at AS retry_at, o.kind AS kind, "
            "a.story_id AS story_id FROM outbox o LEFT JOIN alerts a ON a.id = o.alert_id "
            "WHERE o.channel = ? AND o.state = 'pending' AND o.not_before <= ? ORDER BY o.not_before, o.id LIMIT 1",
            (channel, now))
        if head is None:
            return None
        if head["retry_at"] is not None and head["retry_at"] > now:
            return HeadWaiting(float(head["retry_at"]))
        ids = [int(head["id"])]
        head_story = _story(head)
        story_ids: list[int] = [head_story] if head_story is not None else []
        units = 1  # stories and lone rows (follow-ups, notices) in this message
        if head["group_key"] is not None and max_group > 1:
            for row in db.all(
                    "SELECT o.id AS id, o.kind AS kind, a.story_id AS story_id FROM outbox o "
                    "LEFT JOIN alerts a ON a.id = o.alert_id WHERE o.channel = ? AND o.state = 'pending' "
                    "AND o.group_key = ? AND o.not_before <= ? AND o.id != ? ORDER BY o.not_before, o.id",
                    (channel, head["group_key"], now, head["id"])):
                story = _story(row)
                if story is not None and story in story_ids:
                    ids.append(int(row["id"]))
                    continue
                if units >= max_group:
                    continue  # a later row of a story already in the message may still join it
                ids.append(int(row["id"]))
                units += 1
                if story is not None:
                    story_ids.append(story)
        if story_ids:
            ids += [int(row["id"]) for row in db.all(
                f"SELECT o.id AS id FROM outbox o JOIN alerts a ON a.id = o.alert_id WHERE o.channel = ? "
                f"AND o.state = 'pending' AND o.kind = 'alert' AND o.not_before <= ? "
                f"AND a.story_id IN ({placeholders(story_ids)}) ORDER BY o.not_before, o.id",
                (channel, now, *story_ids)) if int(row["id"]) not in ids]
        marks = placeholders(ids)
        db.execute(f"UPDATE outbox SET state = 'sending', attempts = attempts + 1 WHERE id IN ({marks})", ids)
        agg = db.one(f"SELECT max(attempts) AS attempts, min(parts_sent) AS parts_sent, "
                     f"max(possible_repeat) AS repeat, min(created) AS created FROM outbox WHERE id IN ({marks})", ids)
    assert agg is not None
    return Claimed(tuple(ids), channel, int(agg["attempts"]), int(agg["parts_sent"]), bool(agg["repeat"]),
                   float(agg["created"]))


def next_due(db: Database, channel: str) -> float | None:
    """When the channel has something to do next (None: nothing pending)."""
    value = db.scalar(f"SELECT min({db.greatest('not_before', 'coalesce(retry_at, 0)')}) FROM outbox "
                      "WHERE channel = ? AND state = 'pending'", (channel,))
    return float(value) if value is not None else None


def _update(db: Database, ids: Sequence[int], assignments: str, args: Sequence[Any]) -> None:
    with db.transaction():
        db.execute(f"UPDATE outbox SET {assignments} WHERE id IN ({placeholders(ids)})", (*args, *ids))


def mark_parts(db: Database, ids: Sequence[int], parts_sent: int) -> None:
    """A split message: pieces already accepted are not sent again on retry."""
    _update(db, ids, "parts_sent = ?", (parts_sent,))


def mark_sent(db: Database, ids: Sequence[int], now: float) -> None:
    _update(db, ids, "state = 'sent', sent_at = ?, last_error = NULL, retry_at = NULL", (now,))


def mark_retry(db: Database, ids: Sequence[int], error: str, retry_at: float) -> None:
    _update(db, ids, "state = 'pending', last_error = ?, retry_at = ?", (error[:500], retry_at))


def mark_dead(db: Database, ids: Sequence[int], error: str) -> None:
    _update(db, ids, "state = 'dead', last_error = ?, retry_at = NULL", (error[:500],))


def load_views(db: Database, ids: Sequence[int]) -> list[dict[str, Any]]:
    """Everything render needs for the claimed rows: alert payload, kind, the story's sources.

    ``earlier_rules`` lists the rule titles this story was already sent for on
    the row's channel (a later rule on the same story is an update).
    """
    marks = placeholders(ids)
    rows = db.all(
        f"SELECT o.id AS outbox_id, o.channel AS channel, o.kind AS kind, o.possible_repeat AS possible_repeat, "
        f"o.body AS body, o.created AS queued, a.id AS alert_id, a.story_id AS story_id, a.rule_id AS rule_id, "
        f"a.item_key AS item_key, a.severity AS severity, a.created AS created, a.payload AS payload "
        f"FROM outbox o LEFT JOIN alerts a ON a.id = o.alert_id "
        f"WHERE o.id IN ({marks}) ORDER BY o.not_before, o.id", ids)
    out: list[dict[str, Any]] = []
    sources: dict[int, list[dict[str, Any]]] = {}
    earlier: dict[tuple[int, str], list[str]] = {}
    for r in rows:
        if r["alert_id"] is None:
            out.append({"kind": "notice", "body": r["body"] or "", "outbox_id": r["outbox_id"],
                        "possible_repeat": bool(r["possible_repeat"]), "created": r["queued"]})
            continue
        view = dict(json.loads(r["payload"]))
        view.update(outbox_id=r["outbox_id"], kind=r["kind"], possible_repeat=bool(r["possible_repeat"]),
                    alert_id=r["alert_id"], story_id=r["story_id"], rule_id=r["rule_id"], severity=r["severity"],
                    created=r["created"], item_key=r["item_key"])
        story = int(r["story_id"])
        if story not in sources:
            sources[story] = [{"feed": s.feed, "title": s.title, "link": s.link} for s in stories.sources(db, story)]
        view["sources"] = sources[story]
        key = (story, r["channel"])
        if key not in earlier:
            earlier[key] = [str(json.loads(p["payload"]).get("rule_title") or p["rule_id"]) for p in db.all(
                f"SELECT a.payload AS payload, a.rule_id AS rule_id FROM outbox o JOIN alerts a ON a.id = o.alert_id "
                f"WHERE a.story_id = ? AND o.channel = ? AND o.kind = 'alert' AND o.state = 'sent' "
                f"AND o.id NOT IN ({marks}) ORDER BY a.id", (story, r["channel"], *ids))]
        view["earlier_rules"] = earlier[key]
        out.append(view)
    return out


def depth(db: Database) -> int:
    """Messages waiting: pending or being sent."""
    return int(db.scalar("SELECT count(*) FROM outbox WHERE state IN ('pending', 'sending')"))


def counts(db: Database) -> dict[str, int]:
    """Rows per state (pending, sending, sent, dead)."""
    return {row["state"]: int(row["n"]) for row in db.all("SELECT state, count(*) AS n FROM outbox GROUP BY state")}


def sent_since(db: Database, since: float) -> int:
    return int(db.scalar("SELECT count(*) FROM outbox WHERE state = 'sent' AND sent_at >= ?", (since,)))


def retry_dead(db: Database, outbox_id: int) -> bool:
    """Re-queue one dead outbox row (attempts reset); False if it is not dead."""
    with db.transaction():
        return db.execute("UPDATE outbox SET state = 'pending', attempts = 0, retry_at = NULL, parts_sent = 0 "
                          "WHERE id = ? AND state = 'dead'", (outbox_id,)).rowcount == 1
