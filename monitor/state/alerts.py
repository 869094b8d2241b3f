"""The ``alerts`` table: one alert per (story, rule), with what the message shows.

``UNIQUE (story_id, rule_id)`` is the rule "a story never alerts twice for one
rule": duplicates from other outlets, re-polls, edits and reloads all end at
that constraint. The payload is the JSON the renderer reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from monitor.state.db import Database, as_dict

__all__ = ["StoryAlert", "insert", "exists", "of_story", "recent", "last_created"]


@dataclass(frozen=True)
class StoryAlert:
    id: int
    rule_id: str
    created: float


def insert(db: Database, *, story_id: int, rule_id: str, item_key: str, severity: str,
           payload: dict[str, Any], now: float) -> int | None:
    """A new alert id, or None when this story already alerted for this rule."""
    row = db.one(
        "INSERT INTO alerts(story_id, rule_id, item_key, created, severity, payload) VALUES (?, ?, ?, ?, ?, ?) "
        "ON CONFLICT(story_id, rule_id) DO NOTHING RETURNING id",
        (story_id, rule_id, item_key, now, severity, json.dumps(payload, ensure_ascii=False)))
    return int(row["id"]) if row is not None else None


def exists(db: Database, story_id: int, rule_id: str) -> bool:
    return db.one("SELECT 1 AS found FROM alerts WHERE story_id = ? AND rule_id = ?",
                  (story_id, rule_id)) is not None


def of_story(db: Database, story_id: int) -> list[StoryAlert]:
    return [StoryAlert(int(r["id"]), r["rule_id"], float(r["created"])) for r in db.all(
        "SELECT id, rule_id, created FROM alerts WHERE story_id = ? ORDER BY id", (story_id,))]


def recent(db: Database, limit: int = 50) -> list[dict[str, Any]]:
    """Recent alerts, newest first, each with its per-channel delivery rows (``monitor alerts``)."""
    out = []
    for a in db.all("SELECT id, story_id, rule_id, item_key, created, severity, payload FROM alerts "
                    "ORDER BY id DESC LIMIT ?", (limit,)):
        payload = json.loads(a["payload"])
        deliveries = [as_dict(r) for r in db.all(
            "SELECT id AS outbox_id, channel, kind, state, attempts, not_before, sent_at, last_error, "
            "possible_repeat FROM outbox WHERE alert_id = ? ORDER BY id", (a["id"],))]
        out.append({"id": a["id"], "story_id": a["story_id"], "rule_id": a["rule_id"], "item_key": a["item_key"],
                    "created": a["created"], "severity": a["severity"], "title": payload.get("title"),
                    "link": payload.get("link"), "feed": payload.get("feed"), "deliveries": deliveries})
    return out


def last_created(db: Database) -> float | None:
    """When the newest alert was created (None: no alert yet)."""
    value = db.scalar("SELECT max(created) FROM alerts")
    return float(value) if value is not None else None
