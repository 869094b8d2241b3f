"""All SQL for the ``alerts`` and ``outbox`` tables.

Why one module: the crash-safety argument lives in a handful of statements
(claim commits 'sending' before the send; 'sending' found at startup means
"maybe sent" and is re-queued as a possible repeat), so they are kept
together where they can be read and tested as a whole. Functions that take
``conn`` without opening a transaction run inside the caller's.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from monitor.state.db import transaction

__all__ = ["Claimed", "insert_alert", "enqueue", "recover_inflight", "claim", "next_due", "mark_parts",
           "mark_sent", "mark_retry", "mark_dead", "load_views", "depth", "list_alerts", "retry_dead"]


# -- written by route (inside the pipeline's transaction) ---------------------

def insert_alert(conn: sqlite3.Connection, *, story_id: int, rule_id: str, item_key: str, severity: str,
                 payload: dict[str, Any], now: float) -> int | None:
    """A new alert id, or None when this story already alerted for this rule."""
    row = conn.execute(
        "INSERT INTO alerts(story_id, rule_id, item_key, created, severity, payload) VALUES (?, ?, ?, ?, ?, ?) "
        "ON CONFLICT(story_id, rule_id) DO NOTHING RETURNING id",
        (story_id, rule_id, item_key, now, severity, json.dumps(payload, ensure_ascii=False))).fetchone()
    return int(row[0]) if row else None


def alert_exists(conn: sqlite3.Connection, story_id: int, rule_id: str) -> bool:
    """True if this story already has an alert for this rule (one per story and rule)."""
    return conn.execute("SELECT 1 FROM alerts WHERE story_id = ? AND rule_id = ?",
                        (story_id, rule_id)).fetchone() is not None


def story_alerts(conn: sqlite3.Connection, story_id: int) -> list[sqlite3.Row]:
    return conn.execute("SELECT id, rule_id, created FROM alerts WHERE story_id = ? ORDER BY id",
                        (story_id,)).fetchall()


def enqueue(conn: sqlite3.Connection, *, alert_id: int, channel: str, kind: str, not_before: float, now: float,
            group_key: str | None = None) -> int | None:
    """One outbox row (UNIQUE per alert, channel and kind); None if it already exists."""
    row = conn.execute(
        "INSERT INTO outbox(alert_id, channel, kind, state, not_before, created, group_key) "
        "VALUES (?, ?, ?, 'pending', ?, ?, ?) ON CONFLICT(alert_id, channel, kind) DO NOTHING RETURNING id",
        (alert_id, channel, kind, not_before, now, group_key)).fetchone()
    return int(row[0]) if row else None


def enqueue_notice(conn: sqlite3.Connection, channel: str, text: str, now: float) -> int:
    """An operational message (feed down, reload failed) on ``channel``, in its own transaction."""
    with transaction(conn):
        return int(conn.execute("INSERT INTO outbox(alert_id, channel, kind, state, not_before, created, body) "
                                "VALUES (NULL, ?, 'notice', 'pending', ?, ?, ?)", (channel, now, now, text)).lastrowid)


def last_for_rule(conn: sqlite3.Connection, channel: str, rule_id: str) -> sqlite3.Row | None:
    """The latest alert row of ``rule_id`` on ``channel`` (for group_interval / cooldown)."""
    return conn.execute(
        "SELECT o.id, o.state, o.not_before, o.sent_at, o.group_key FROM outbox o JOIN alerts a ON a.id = o.alert_id "
        "WHERE o.channel = ? AND a.rule_id = ? AND o.kind = 'alert' ORDER BY o.not_before DESC, o.id DESC LIMIT 1",
        (channel, rule_id)).fetchone()


# -- used by the delivery worker ----------------------------------------------

@dataclass(frozen=True)
class Claimed:
    """Rows claimed together (one message): committed as 'sending' already."""

    ids: tuple[int, ...]
    channel: str
    attempts: int
    parts_sent: int
    possible_repeat: bool
    created: float


def recover_inflight(conn: sqlite3.Connection) -> int:
    """At startup: rows left 'sending' by a crash may have been sent; re-queue them marked as possible repeats."""
    with transaction(conn):
        return conn.execute("UPDATE outbox SET state = 'pending', possible_repeat = 1 WHERE state = 'sending'").rowcount


def claim(conn: sqlite3.Connection, channel: str, now: float, max_group: int = 20) -> Claimed | float | None:
    """Claim the head of ``channel``'s line and every row that goes out in the same message.

    One message per story: all due alert rows of the head's story on this
    channel (one row per rule that fired) are claimed with it. Rows that share
    the head's ``group_key`` (group_wait, cooldown slot, digest) come too, each
    with the rest of its own story; at most ``max_group`` stories per message
    (the head's story is never split). Follow-ups and notices go alone unless
    they share a group_key.

    Returns the claim, or the time the head becomes sendable when it is
    backing off (the line waits: order within a channel is kept), or None.
    The 'sending' state is committed before this returns.
    """
    with transaction(conn):
        head = conn.execute(
            "SELECT o.id, o.group_key, o.retry_at, o.kind, a.story_id FROM outbox o "
            "LEFT JOIN alerts a ON a.id = o.alert_id WHERE o.channel = ? AND o.state = 'pending' "
            "AND o.not_before <= ? ORDER BY o.not_before, o.id LIMIT 1", (channel, now)).fetchone()
        if head is None:
            return None
        if head["retry_at"] is not None and head["retry_at"] > now:
            return float(head["retry_at"])
        ids = [int(head["id"])]
        stories: list[int] = [int(head["story_id"])] if head["kind"] == "alert" and head["story_id"] is not None else []
        units = 1  # stories and lone rows (follow-ups, notices) in this message
        if head["group_key"] is not None and max_group > 1:
            for r in conn.execute(
                    "SELECT o.id, o.kind, a.story_id FROM outbox o LEFT JOIN alerts a ON a.id = o.alert_id "
                    "WHERE o.channel = ? AND o.state = 'pending' AND o.group_key = ? AND o.not_before <= ? "
                    "AND o.id != ? ORDER BY o.not_before, o.id", (channel, head["group_key"], now, head["id"])):
                story = int(r["story_id"]) if r["kind"] == "alert" and r["story_id"] is not None else None
                if story is not None and story in stories:
                    ids.append(int(r["id"]))
                    continue
                if units >= max_group:
                    continue  # a later row of a story already in the message may still join it
                ids.append(int(r["id"]))
                units += 1
                if story is not None:
                    stories.append(story)
        if stories:
            marks = ",".join("?" * len(stories))
            ids += [int(r[0]) for r in conn.execute(
                f"SELECT o.id FROM outbox o JOIN alerts a ON a.id = o.alert_id WHERE o.channel = ? "
                f"AND o.state = 'pending' AND o.kind = 'alert' AND o.not_before <= ? AND a.story_id IN ({marks}) "
                f"ORDER BY o.not_before, o.id", (channel, now, *stories)) if int(r[0]) not in ids]
        marks = ",".join("?" * len(ids))
        conn.execute(f"UPDATE outbox SET state = 'sending', attempts = attempts + 1 WHERE id IN ({marks})", ids)
        agg = conn.execute(f"SELECT max(attempts), min(parts_sent), max(possible_repeat), min(created) "
                           f"FROM outbox WHERE id IN ({marks})", ids).fetchone()
    return Claimed(tuple(ids), channel, int(agg[0]), int(agg[1]), bool(agg[2]), float(agg[3]))


def next_due(conn: sqlite3.Connection, channel: str) -> float | None:
    """When the channel has something to do next (None: nothing pending)."""
    row = conn.execute("SELECT min(max(not_before, coalesce(retry_at, 0))) FROM outbox "
                       "WHERE channel = ? AND state = 'pending'", (channel,)).fetchone()
    return float(row[0]) if row and row[0] is not None else None


def _update(conn: sqlite3.Connection, ids: tuple[int, ...], sql: str, args: tuple) -> None:
    marks = ",".join("?" * len(ids))
    with transaction(conn):
        conn.execute(f"UPDATE outbox SET {sql} WHERE id IN ({marks})", args + tuple(ids))


def mark_parts(conn: sqlite3.Connection, ids: tuple[int, ...], parts_sent: int) -> None:
    """A split message: pieces already accepted are not sent again on retry."""
    _update(conn, ids, "parts_sent = ?", (parts_sent,))


def mark_sent(conn: sqlite3.Connection, ids: tuple[int, ...], now: float) -> None:
    _update(conn, ids, "state = 'sent', sent_at = ?, last_error = NULL, retry_at = NULL", (now,))


def mark_retry(conn: sqlite3.Connection, ids: tuple[int, ...], error: str, retry_at: float) -> None:
    _update(conn, ids, "state = 'pending', last_error = ?, retry_at = ?", (error[:500], retry_at))


def mark_dead(conn: sqlite3.Connection, ids: tuple[int, ...], error: str) -> None:
    _update(conn, ids, "state = 'dead', last_error = ?, retry_at = NULL", (error[:500],))


def load_views(conn: sqlite3.Connection, ids: tuple[int, ...]) -> list[dict[str, Any]]:
    """Everything render needs for the claimed rows: alert payload, kind, the story's sources.

    ``earlier_rules`` lists the rule titles this story was already sent for on
    the row's channel (a later rule on the same story is an update).
    """
    marks = ",".join("?" * len(ids))
    rows = conn.execute(
        f"SELECT o.id AS outbox_id, o.channel, o.kind, o.possible_repeat, o.body, o.created AS queued, "
        f"a.id AS alert_id, a.story_id, a.rule_id, a.item_key, a.severity, a.created, a.payload "
        f"FROM outbox o LEFT JOIN alerts a ON a.id = o.alert_id "
        f"WHERE o.id IN ({marks}) ORDER BY o.not_before, o.id", ids).fetchall()
    out = []
    sources: dict[int, list[dict]] = {}
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
            sources[story] = [dict(s) for s in conn.execute(
                "SELECT feed, title, link FROM story_items WHERE story_id = ? ORDER BY added, rowid", (story,))]
        view["sources"] = sources[story]
        key = (story, r["channel"])
        if key not in earlier:
            earlier[key] = [str(json.loads(p[0]).get("rule_title") or p[1]) for p in conn.execute(
                f"SELECT a.payload, a.rule_id FROM outbox o JOIN alerts a ON a.id = o.alert_id "
                f"WHERE a.story_id = ? AND o.channel = ? AND o.kind = 'alert' AND o.state = 'sent' "
                f"AND o.id NOT IN ({marks}) ORDER BY a.id", (story, r["channel"], *ids))]
        view["earlier_rules"] = earlier[key]
        out.append(view)
    return out


def depth(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM outbox WHERE state IN ('pending', 'sending')").fetchone()[0])


def counts(conn: sqlite3.Connection) -> dict[str, int]:
    return {r[0]: int(r[1]) for r in conn.execute("SELECT state, count(*) FROM outbox GROUP BY state")}


# -- CLI ----------------------------------------------------------------------

def list_alerts(conn: sqlite3.Connection, limit: int = 50) -> list[dict]:
    """Recent alerts, newest first, each with its per-channel delivery rows."""
    alerts = conn.execute("SELECT id, story_id, rule_id, item_key, created, severity, payload FROM alerts "
                          "ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
    out = []
    for a in alerts:
        payload = json.loads(a["payload"])
        deliveries = [dict(r) for r in conn.execute(
            "SELECT id AS outbox_id, channel, kind, state, attempts, not_before, sent_at, last_error, possible_repeat "
            "FROM outbox WHERE alert_id = ? ORDER BY id", (a["id"],))]
        out.append({"id": a["id"], "story_id": a["story_id"], "rule_id": a["rule_id"], "item_key": a["item_key"],
                    "created": a["created"], "severity": a["severity"], "title": payload.get("title"),
                    "link": payload.get("link"), "feed": payload.get("feed"), "deliveries": deliveries})
    return out


def retry_dead(conn: sqlite3.Connection, outbox_id: int) -> bool:
    """Re-queue one dead outbox row (attempts reset); False if it is not dead."""
    with transaction(conn):
        return conn.execute("UPDATE outbox SET state = 'pending', attempts = 0, retry_at = NULL, parts_sent = 0 "
                            "WHERE id = ? AND state = 'dead'", (outbox_id,)).rowcount == 1
