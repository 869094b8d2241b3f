"""The ``alerts`` table: one alert per (story, rule), with what the message shows.

``UNIQUE (story_id, rule_id)`` is the rule "a story never alerts twice for one
rule": duplicates from other outlets, re-polls, edits and reloads all end at
that constraint. The payload is the alert's ``AlertPayload``, stored as JSON
and read back typed: nothing outside this package sees the JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from monitor.state.db import Database, optional_float

__all__ = ["StoryAlert", "PayloadHit", "AlertPayload", "AlertRecord", "DeliveryRecord", "insert", "exists",
           "of_story", "recent", "last_created"]


@dataclass(frozen=True)
class PayloadHit:
    """One mention that made the rule fire: ``text == field_text[start:end]``."""

    entity: str
    alias: str
    field: str
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class AlertPayload:
    """What the message of an alert shows: the rule, the item that fired it, the mentions."""

    rule_id: str
    rule_title: str
    feed: str
    title: str
    rule_description: str = ""
    summary: str = ""
    link: str | None = None
    guid: str | None = None
    published: str | None = None
    author: str | None = None
    hits: tuple[PayloadHit, ...] = ()
    dedup_reason: str | None = None
    similarity: float | None = None

    def to_json(self) -> str:
        # Field by field: dataclasses.asdict deep-copies and was a third of routing's cost.
        return json.dumps({
            "rule_id": self.rule_id, "rule_title": self.rule_title, "rule_description": self.rule_description,
            "feed": self.feed, "title": self.title, "summary": self.summary, "link": self.link, "guid": self.guid,
            "published": self.published, "author": self.author,
            "hits": [{"entity": h.entity, "alias": h.alias, "field": h.field, "start": h.start, "end": h.end,
                      "text": h.text} for h in self.hits],
            "dedup_reason": self.dedup_reason, "similarity": self.similarity,
        }, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str, *, rule_id: str) -> AlertPayload:
        """Read a stored payload; a field missing or of the wrong type (an older row) gets its default."""
        data = json.loads(text)
        if not isinstance(data, dict):
            data = {}
        hits = []
        for h in data.get("hits") or []:
            if isinstance(h, dict):
                try:
                    hits.append(PayloadHit(_str(h.get("entity")), _str(h.get("alias")), _str(h.get("field")),
                                           int(h.get("start") or 0), int(h.get("end") or 0), _str(h.get("text"))))
                except (TypeError, ValueError):
                    continue
        similarity = data.get("similarity")
        return cls(
            rule_id=_str(data.get("rule_id")) or rule_id,
            rule_title=_str(data.get("rule_title")) or _str(data.get("rule_id")) or rule_id,
            rule_description=_str(data.get("rule_description")),
            feed=_str(data.get("feed")), title=_str(data.get("title")), summary=_str(data.get("summary")),
            link=_opt(data.get("link")), guid=_opt(data.get("guid")), published=_opt(data.get("published")),
            author=_opt(data.get("author")), hits=tuple(hits), dedup_reason=_opt(data.get("dedup_reason")),
            similarity=float(similarity) if isinstance(similarity, (int, float)) else None)


def _str(value: object) -> str:
    return value if isinstance(value, str) else ("" if value is None else str(value))


def _opt(value: object) -> str | None:
    return None if value is None else _str(value)


@dataclass(frozen=True)
class StoryAlert:
    id: int
    rule_id: str
    created: float


def insert(db: Database, *, story_id: int, rule_id: str, item_key: str, severity: str,
           payload: AlertPayload, now: float) -> int | None:
    """A new alert id, or None when this story already alerted for this rule."""
    row = db.one(
        "INSERT INTO alerts(story_id, rule_id, item_key, created, severity, payload) VALUES (?, ?, ?, ?, ?, ?) "
        "ON CONFLICT(story_id, rule_id) DO NOTHING RETURNING id",
        (story_id, rule_id, item_key, now, severity, payload.to_json()))
    return int(row["id"]) if row is not None else None


def exists(db: Database, story_id: int, rule_id: str) -> bool:
    return db.one("SELECT 1 AS found FROM alerts WHERE story_id = ? AND rule_id = ?",
                  (story_id, rule_id)) is not None


def of_story(db: Database, story_id: int) -> list[StoryAlert]:
    return [StoryAlert(int(r["id"]), r["rule_id"], float(r["created"])) for r in db.all(
        "SELECT id, rule_id, created FROM alerts WHERE story_id = ? ORDER BY id", (story_id,))]


@dataclass(frozen=True)
class DeliveryRecord:
    """One channel's row of an alert, as ``monitor alerts`` shows it. ``last_error`` is stored redacted."""

    outbox_id: int
    channel: str
    kind: str
    state: str
    attempts: int
    failures: int
    not_before: float
    sent_at: float | None
    retry_at: float | None
    reason: str | None
    last_error: str | None
    possible_repeat: bool
    message_id: str | None
    sent_as: str | None
    silence_id: int | None


@dataclass(frozen=True)
class AlertRecord:
    """An alert and its deliveries, newest first in ``recent``."""

    id: int
    story_id: int
    rule_id: str
    item_key: str
    created: float
    severity: str
    title: str
    link: str | None
    feed: str
    deliveries: tuple[DeliveryRecord, ...] = field(default=())


def recent(db: Database, limit: int = 50) -> list[AlertRecord]:
    """Recent alerts, newest first, each with its per-channel delivery rows (``monitor alerts``)."""
    out = []
    for a in db.all("SELECT id, story_id, rule_id, item_key, created, severity, payload FROM alerts "
                    "ORDER BY id DESC LIMIT ?", (limit,)):
        payload = AlertPayload.from_json(a["payload"], rule_id=a["rule_id"])
        deliveries = tuple(DeliveryRecord(
            outbox_id=int(r["id"]), channel=r["channel"], kind=r["kind"], state=r["state"],
            attempts=int(r["attempts"]), failures=int(r["failures"]), not_before=float(r["not_before"]),
            sent_at=optional_float(r["sent_at"]), retry_at=optional_float(r["retry_at"]), reason=r["reason"],
            last_error=r["last_error"], possible_repeat=bool(r["possible_repeat"]), message_id=r["message_id"],
            sent_as=r["sent_as"], silence_id=int(r["silence_id"]) if r["silence_id"] is not None else None,
        ) for r in db.all(
            "SELECT id, channel, kind, state, attempts, failures, not_before, sent_at, retry_at, reason, last_error, "
            "possible_repeat, message_id, sent_as, silence_id FROM outbox WHERE alert_id = ? ORDER BY id",
            (a["id"],)))
        out.append(AlertRecord(id=int(a["id"]), story_id=int(a["story_id"]), rule_id=a["rule_id"],
                               item_key=a["item_key"], created=float(a["created"]), severity=a["severity"],
                               title=payload.title, link=payload.link, feed=payload.feed, deliveries=deliveries))
    return out


def last_created(db: Database) -> float | None:
    """When the newest alert was created (None: no alert yet)."""
    value = db.scalar("SELECT max(created) FROM alerts")
    return float(value) if value is not None else None
