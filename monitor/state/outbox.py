"""The ``outbox`` table: one row per message to send on one channel.

Why the crash-safety argument fits in this one module: a row is committed as
'sending' before the send (``claim``) and 'sent' after it (``mark_sent``);
'sending' found at start-up means "maybe sent" and is re-queued as a
possible repeat (``recover_inflight``). So after a kill -9 at most the message
in flight is sent again, and it says so; nothing is lost.

States: pending -> sending -> sent | dead, and back to pending after a failed
attempt (``record_failure``); silenced rows were held back by a silence and
are kept to be listed. ``retry_at`` in the future sets one row aside (its own
backoff) without holding up the rows behind it.

Rows are read into frozen views (``AlertView``, ``NoticeView``): the renderer
and the deliverer never see a database row or the payload's JSON.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from monitor.state import stories
from monitor.state.alerts import AlertPayload
from monitor.state.db import Database, Params, Row, optional_float, placeholders

__all__ = ["Claimed", "LastOfRule", "AlertView", "NoticeView", "View", "ThreadRoot", "enqueue", "enqueue_notice",
           "last_for_rule", "channels_of_alert", "recover_inflight", "claim", "next_due", "mark_parts", "release",
           "mark_sent", "record_failure", "mark_dead", "mark_silenced", "load_views", "thread_root",
           "sent_alert_ids", "dead_count", "dead_by_reason", "depth", "counts", "sent_since", "retry_dead"]


# -- written by routing (inside the pipeline's transaction) -------------------------

def enqueue(db: Database, *, alert_id: int, channel: str, kind: str, not_before: float, now: float,
            group_key: str | None = None, silence_id: int | None = None, rearm: bool = False) -> int | None:
    """One outbox row (UNIQUE per alert, channel and kind); None if it already exists.

    ``silence_id``: the row is recorded as held back by that silence, never sent.
    ``rearm``: a row of this alert, channel and kind that was already sent is
    queued again (a follow-up that edits the story's message each time a new
    source comes in).
    """
    state = "silenced" if silence_id is not None else "pending"
    conflict = ("DO UPDATE SET state = 'pending', not_before = excluded.not_before, attempts = 0, failures = 0, "
                "first_failed_at = NULL, reason = NULL, retry_at = NULL, parts_sent = 0, possible_repeat = 0, "
                "last_error = NULL, message_id = NULL, sent_as = NULL WHERE outbox.state = 'sent'"
                if rearm else "DO NOTHING")
    # rule_id is the alert's, copied so that "the last message of rule R on channel C" (cooldowns,
    # group_interval) is one index lookup instead of a join over the channel's whole history.
    row = db.one(
        "INSERT INTO outbox(alert_id, channel, kind, state, not_before, created, group_key, silence_id, rule_id) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, (SELECT rule_id FROM alerts WHERE id = ?)) "
        f"ON CONFLICT(alert_id, channel, kind) {conflict} RETURNING id",
        (alert_id, channel, kind, state, not_before, now, group_key, silence_id, alert_id))
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
        "SELECT state, not_before, sent_at FROM outbox WHERE channel = ? AND rule_id = ? AND kind = 'alert' "
        "AND state != 'silenced' ORDER BY not_before DESC, id DESC LIMIT 1", (channel, rule_id))
    if row is None:
        return None
    return LastOfRule(row["state"], float(row["not_before"]), optional_float(row["sent_at"]))


def channels_of_alert(db: Database, alert_id: int) -> list[str]:
    """The channels an alert was queued on (and not silenced on)."""
    return [row["channel"] for row in db.all(
        "SELECT DISTINCT channel FROM outbox WHERE alert_id = ? AND kind = 'alert' AND state != 'silenced'",
        (alert_id,))]


# -- used by the delivery worker ------------------------------------------------------

@dataclass(frozen=True)
class Claimed:
    """Rows claimed together (one message), already committed as 'sending'.

    ``failures`` and ``first_failed_at`` are the message's failed attempts so
    far (the give-up rules read them); ``message_id`` is set when pieces of a
    split message were already accepted.
    """

    ids: tuple[int, ...]
    channel: str
    attempts: int
    parts_sent: int
    possible_repeat: bool
    created: float
    failures: int = 0
    first_failed_at: float | None = None
    message_id: str | None = None


def recover_inflight(db: Database, channel: str | None = None) -> int:
    """Rows left 'sending' by a crash (of this daemon, or of the instance whose channel lease
    this one took over: ``channel``) may have been sent; re-queue them marked as possible repeats."""
    where, args = ("state = 'sending'", ()) if channel is None else ("state = 'sending' AND channel = ?", (channel,))
    with db.transaction():
        return db.execute(f"UPDATE outbox SET state = 'pending', possible_repeat = 1 WHERE {where}", args).rowcount


def sent_times(db: Database, channel: str, since: float) -> list[float]:
    """When the channel's messages since ``since`` were sent (a new lease holder's rate limit)."""
    return [float(row["sent_at"]) for row in db.all(
        "SELECT sent_at FROM outbox WHERE channel = ? AND sent_at >= ? ORDER BY sent_at", (channel, since))]


def _story(row: Row) -> int | None:
    return int(row["story_id"]) if row["kind"] == "alert" and row["story_id"] is not None else None


def _waiting(exclude: Sequence[int]) -> tuple[str, list[int]]:
    """SQL (and its values) for "pending, due, not set aside, not excluded" on outbox ``o``; needs ``now`` twice."""
    sql = ("o.state = 'pending' AND o.not_before <= ? AND (o.retry_at IS NULL OR o.retry_at <= ?)"
           + (f" AND o.id NOT IN ({placeholders(exclude)})" if exclude else ""))
    return sql, list(exclude)


def claim(db: Database, channel: str, now: float, max_group: int = 20,
          exclude: Sequence[int] = ()) -> Claimed | None:
    """Claim the oldest due row of ``channel`` and every row that goes out in the same message.

    Rows set aside (``retry_at`` in the future) and ``exclude`` are skipped:
    the line moves on past them. One message per story: all due alert rows
    of the head's story on this channel (one row per rule that fired) are
    claimed with it. Rows that share the head's ``group_key`` (group_wait,
    cooldown slot, digest) come too, each with the rest of its own story; at
    most ``max_group`` stories per message (the head's story is never split).
    Follow-ups and notices go alone unless they share a group_key. None:
    nothing is due.
    """
    waiting, excluded = _waiting(exclude)
    with db.transaction():
        head = db.one(
            "SELECT o.id AS id, o.group_key AS group_key, o.kind AS kind, a.story_id AS story_id "
            f"FROM outbox o LEFT JOIN alerts a ON a.id = o.alert_id WHERE o.channel = ? AND {waiting} "
            "ORDER BY o.not_before, o.id LIMIT 1", (channel, now, now, *excluded))
        if head is None:
            return None
        ids = [int(head["id"])]
        head_story = _story(head)
        story_ids: list[int] = [head_story] if head_story is not None else []
        units = 1  # stories and lone rows (follow-ups, notices) in this message
        if head["group_key"] is not None and max_group > 1:
            for row in db.all(
                    "SELECT o.id AS id, o.kind AS kind, a.story_id AS story_id FROM outbox o "
                    f"LEFT JOIN alerts a ON a.id = o.alert_id WHERE o.channel = ? AND {waiting} "
                    "AND o.group_key = ? AND o.id != ? ORDER BY o.not_before, o.id",
                    (channel, now, now, *excluded, head["group_key"], head["id"])):
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
            # From the stories' alerts to their rows (CROSS JOIN fixes that order in SQLite): from the
            # channel's waiting rows it would walk the whole backlog for every message claimed.
            ids += [int(row["id"]) for row in db.all(
                f"SELECT o.id AS id FROM alerts a CROSS JOIN outbox o WHERE o.alert_id = a.id "
                f"AND a.story_id IN ({placeholders(story_ids)}) AND o.channel = ? AND o.kind = 'alert' "
                f"AND {waiting} ORDER BY o.not_before, o.id", (*story_ids, channel, now, now, *excluded))
                if int(row["id"]) not in ids]
        marks = placeholders(ids)
        db.execute(f"UPDATE outbox SET state = 'sending', attempts = attempts + 1 WHERE id IN ({marks})", ids)
        agg = db.one(f"SELECT max(attempts) AS attempts, min(parts_sent) AS parts_sent, "
                     f"max(possible_repeat) AS repeat, min(created) AS created, max(failures) AS failures, "
                     f"min(first_failed_at) AS first_failed, max(message_id) AS message_id "
                     f"FROM outbox WHERE id IN ({marks})", ids)
    assert agg is not None
    return Claimed(tuple(ids), channel, int(agg["attempts"]), int(agg["parts_sent"]), bool(agg["repeat"]),
                   float(agg["created"]), int(agg["failures"]), optional_float(agg["first_failed"]),
                   agg["message_id"] if int(agg["parts_sent"]) > 0 else None)


def next_due(db: Database, channel: str, exclude: Sequence[int] = ()) -> float | None:
    """When the channel has something to do next (None: nothing pending)."""
    extra = f" AND id NOT IN ({placeholders(exclude)})" if exclude else ""
    value = db.scalar(f"SELECT min({db.greatest('not_before', 'coalesce(retry_at, 0)')}) FROM outbox "
                      f"WHERE channel = ? AND state = 'pending'{extra}", (channel, *exclude))
    return float(value) if value is not None else None


def _update(db: Database, ids: Sequence[int], assignments: str, args: Params) -> None:
    with db.transaction():
        db.execute(f"UPDATE outbox SET {assignments} WHERE id IN ({placeholders(ids)})", (*args, *ids))


def mark_parts(db: Database, ids: Sequence[int], parts_sent: int, message_id: str | None) -> None:
    """A split message: pieces already accepted are not sent again on retry; the first piece's id is kept."""
    _update(db, ids, "parts_sent = ?, message_id = coalesce(message_id, ?)", (parts_sent, message_id))


def release(db: Database, ids: Sequence[int], parts_sent: int, message_id: str | None) -> None:
    """Back to pending with the pieces already sent (the send went on, recording it did not)."""
    _update(db, ids, "state = 'pending', parts_sent = ?, message_id = coalesce(message_id, ?)",
            (parts_sent, message_id))


def mark_sent(db: Database, ids: Sequence[int], now: float, *, message_id: str | None = None,
              sent_as: str = "message", subject: str | None = None, parts: int = 1) -> None:
    """Delivered: with the channel's id of the message (the thread root of later updates) and how it went."""
    _update(db, ids, "state = 'sent', sent_at = ?, last_error = NULL, retry_at = NULL, reason = NULL, "
                     "message_id = coalesce(?, message_id), sent_as = ?, subject = ?, parts_sent = ?",
            (now, message_id, sent_as, subject, parts))


def record_failure(db: Database, ids: Sequence[int], *, reason: str, error: str, now: float,
                   retry_at: float | None) -> None:
    """A failed attempt: back to pending. ``retry_at`` sets the rows aside until then (None: next in line)."""
    _update(db, ids, "state = 'pending', failures = failures + 1, first_failed_at = coalesce(first_failed_at, ?), "
                     "reason = ?, last_error = ?, retry_at = ?", (now, reason, error[:500], retry_at))


def mark_dead(db: Database, ids: Sequence[int], *, reason: str, error: str, now: float) -> None:
    """Given up: kept with its reason (``monitor alerts`` lists it, ``alerts retry`` re-queues it)."""
    _update(db, ids, "state = 'dead', failures = failures + 1, first_failed_at = coalesce(first_failed_at, ?), "
                     "reason = ?, last_error = ?, retry_at = NULL", (now, reason, error[:500]))


def mark_silenced(db: Database, ids: Sequence[int], silence_id: int) -> None:
    """Held back by a silence that began after the rows were queued: kept, never sent."""
    _update(db, ids, "state = 'silenced', silence_id = ?", (silence_id,))


# -- what the renderer reads ------------------------------------------------------------

@dataclass(frozen=True)
class AlertView:
    """One alert row as its message shows it: the alert's payload, the story's sources, earlier rules."""

    outbox_id: int
    channel: str
    kind: str                       # 'alert' or 'followup'
    possible_repeat: bool
    alert_id: int
    story_id: int
    story_created: float
    rule_id: str
    severity: str
    created: float
    item_key: str
    payload: AlertPayload
    sources: tuple[stories.StorySource, ...] = ()
    earlier_rules: tuple[str, ...] = ()  # rule titles this story was already sent for on this channel


@dataclass(frozen=True)
class NoticeView:
    """An operational message (not an alert)."""

    outbox_id: int
    body: str
    possible_repeat: bool
    created: float


View = AlertView | NoticeView


def load_views(db: Database, ids: Sequence[int]) -> list[View]:
    """Everything render needs for the rows ``ids``, in queue order."""
    marks = placeholders(ids)
    rows = db.all(
        f"SELECT o.id AS outbox_id, o.channel AS channel, o.kind AS kind, o.possible_repeat AS possible_repeat, "
        f"o.body AS body, o.created AS queued, a.id AS alert_id, a.story_id AS story_id, a.rule_id AS rule_id, "
        f"a.item_key AS item_key, a.severity AS severity, a.created AS created, a.payload AS payload, "
        f"coalesce(s.created, a.created) AS story_created "
        f"FROM outbox o LEFT JOIN alerts a ON a.id = o.alert_id LEFT JOIN stories s ON s.id = a.story_id "
        f"WHERE o.id IN ({marks}) ORDER BY o.not_before, o.id", ids)
    out: list[View] = []
    sources: dict[int, tuple[stories.StorySource, ...]] = {}
    earlier: dict[tuple[int, str], tuple[str, ...]] = {}
    for r in rows:
        if r["alert_id"] is None:
            out.append(NoticeView(int(r["outbox_id"]), r["body"] or "", bool(r["possible_repeat"]),
                                  float(r["queued"])))
            continue
        story = int(r["story_id"])
        if story not in sources:
            sources[story] = tuple(stories.sources(db, story))
        key = (story, r["channel"])
        if key not in earlier:
            earlier[key] = tuple(dict.fromkeys(
                AlertPayload.from_json(p["payload"], rule_id=p["rule_id"]).rule_title for p in db.all(
                    # From the story's alerts to their rows (EXISTS keeps that order): from the
                    # channel's sent rows it would walk the channel's whole history.
                    f"SELECT a.payload AS payload, a.rule_id AS rule_id FROM alerts a WHERE a.story_id = ? "
                    f"AND EXISTS (SELECT 1 FROM outbox o WHERE o.alert_id = a.id AND o.channel = ? "
                    f"AND o.kind = 'alert' AND o.state = 'sent' AND o.id NOT IN ({marks})) ORDER BY a.id",
                    (story, r["channel"], *ids))))
        out.append(AlertView(
            outbox_id=int(r["outbox_id"]), channel=r["channel"], kind=r["kind"],
            possible_repeat=bool(r["possible_repeat"]), alert_id=int(r["alert_id"]), story_id=story,
            story_created=float(r["story_created"]), rule_id=r["rule_id"], severity=r["severity"],
            created=float(r["created"]), item_key=r["item_key"],
            payload=AlertPayload.from_json(r["payload"], rule_id=r["rule_id"]),
            sources=sources[story], earlier_rules=earlier[key]))
    return out


@dataclass(frozen=True)
class ThreadRoot:
    """The first message a story got on a channel: what later updates reply to or edit."""

    message_id: str
    subject: str | None
    parts: int      # pieces it was split into (an edit can replace a message of one piece only)
    stories: int    # stories it carried (a digest of several cannot be edited into one story)


def thread_root(db: Database, channel: str, story_id: int) -> ThreadRoot | None:
    """The story's first message on ``channel`` that has an id (after two stories were merged into
    one, the earlier of their first messages)."""
    row = db.one(
        "SELECT o.message_id AS message_id, o.subject AS subject, o.parts_sent AS parts FROM outbox o "
        "JOIN alerts a ON a.id = o.alert_id WHERE a.story_id = ? AND o.channel = ? AND o.kind = 'alert' "
        "AND o.state = 'sent' AND o.sent_as = 'message' AND o.message_id IS NOT NULL "
        "ORDER BY o.sent_at, o.id LIMIT 1", (story_id, channel))
    if row is None:
        return None
    count = db.scalar(
        "SELECT count(DISTINCT a.story_id) FROM outbox o JOIN alerts a ON a.id = o.alert_id "
        "WHERE o.channel = ? AND o.message_id = ?", (channel, row["message_id"]))
    return ThreadRoot(row["message_id"], row["subject"], max(1, int(row["parts"])), int(count or 1))


def sent_alert_ids(db: Database, channel: str, story_id: int) -> list[int]:
    """Outbox ids of the story's alert rows already delivered on ``channel`` (what an edit shows again)."""
    return [int(r["id"]) for r in db.all(
        "SELECT o.id AS id FROM outbox o JOIN alerts a ON a.id = o.alert_id WHERE a.story_id = ? "
        "AND o.channel = ? AND o.kind = 'alert' AND o.state = 'sent' ORDER BY o.id", (story_id, channel))]


# -- counts -------------------------------------------------------------------------------

def dead_count(db: Database, channel: str) -> int:
    """Dead messages of ``channel`` not yet re-queued."""
    return int(db.scalar("SELECT count(*) FROM outbox WHERE channel = ? AND state = 'dead'", (channel,)))


def dead_by_reason(db: Database) -> dict[tuple[str, str], int]:
    """Dead rows per (channel, reason), for ``/metrics``."""
    return {(row["channel"], row["reason"] or "unknown"): int(row["n"]) for row in db.all(
        "SELECT channel, reason, count(*) AS n FROM outbox WHERE state = 'dead' GROUP BY channel, reason")}


def depth(db: Database) -> int:
    """Messages waiting: pending or being sent."""
    return int(db.scalar("SELECT count(*) FROM outbox WHERE state IN ('pending', 'sending')"))


def counts(db: Database) -> dict[str, int]:
    """Rows per state (pending, sending, sent, dead, silenced)."""
    return {row["state"]: int(row["n"]) for row in db.all("SELECT state, count(*) AS n FROM outbox GROUP BY state")}


def sent_since(db: Database, since: float) -> int:
    return int(db.scalar("SELECT count(*) FROM outbox WHERE state = 'sent' AND sent_at >= ?", (since,)))


def retry_dead(db: Database, outbox_id: int) -> bool:
    """Re-queue one dead outbox row (its failures forgotten); False if it is not dead."""
    with db.transaction():
        return db.execute("UPDATE outbox SET state = 'pending', attempts = 0, failures = 0, first_failed_at = NULL, "
                          "retry_at = NULL, parts_sent = 0, message_id = NULL WHERE id = ? AND state = 'dead'",
                          (outbox_id,)).rowcount == 1
