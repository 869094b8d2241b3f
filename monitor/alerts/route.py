"""Route stage: decide which alerts exist and when each channel gets them.

Runs inside the pipeline's transaction, so an item's "seen" mark, its story,
its alerts and their outbox rows commit together or not at all.

* One alert per (story, rule): duplicates from other outlets, re-polls, edits
  and rules reloads never re-alert a rule the story already alerted for; an
  edit that adds a rule match alerts for that rule only.
* A duplicate that brings a new outlet to an alerted story adds a source; if
  ``followup_after`` is set, one "reported by N more outlets" follow-up per
  story and channel is queued (the count is read when it is sent).
* ``not_before`` of each outbox row applies, in order: group_wait (first
  alert of a rule on a channel waits to collect others), group_interval or
  the rule's cooldown (later alerts of that rule wait for the next slot and
  go out together), the channel's digest period, then quiet hours in the
  channel's time zone. Rows that waited share a ``group_key`` so the
  deliverer folds them into one message. Pure time arithmetic is in
  functions that take ``now``.
* Rules decide *whether* and *when* a channel gets a (story, rule) row; the
  message is per story: ``outbox.claim`` takes every due row of the head's
  story on that channel, so the rules that fired on one article go out as one
  message listing them all. A rule that fires later (an edit) is an update of
  the story's message: the deliverer threads it (reply, edit, same email thread).
* A silence in force (``monitor silence add``) that matches the alert on a
  channel records the row as silenced: listed by ``monitor alerts``, never sent.
* On a channel whose ``updates`` is ``edit``, each new source re-arms the
  story's follow-up, so the first message is edited to the new count; other
  channels get one follow-up per story.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from datetime import time as dtime
from zoneinfo import ZoneInfo

from monitor import metrics
from monitor.alerts.settings import ChannelSettings, RoutingSettings
from monitor.alerts.silences import silencing
from monitor.rules import RuleMatch
from monitor.state import alerts as state_alerts
from monitor.state import outbox as state_outbox
from monitor.state import silences as state_silences
from monitor.state.db import Database
from monitor.stories.index import StoryAssignment
from monitor.types import Item, Severity

__all__ = ["plan_alerts", "quiet_until", "next_digest"]

log = logging.getLogger(__name__)


def quiet_until(ts: float, quiet_hours: str | None, tz: str) -> float | None:
    """End of the quiet period containing ``ts`` (unix seconds), or None if ``ts`` is not in one."""
    if not quiet_hours:
        return None
    start_s, end_s = quiet_hours.split("-")
    zone = ZoneInfo(tz)
    local = datetime.fromtimestamp(ts, zone)
    start = _clock_time(start_s)
    end = _clock_time(end_s)
    t = local.time().replace(tzinfo=None)
    if start == end:
        return None
    if start < end:
        if not (start <= t < end):
            return None
        day = local.date()
    else:  # crosses midnight
        if t >= start:
            day = local.date() + timedelta(days=1)
        elif t < end:
            day = local.date()
        else:
            return None
    return datetime.combine(day, end, tzinfo=zone).timestamp()


def _clock_time(text: str) -> dtime:
    """'22:30' -> 22:30 (quiet_hours is validated as HH:MM-HH:MM by the settings)."""
    hours, minutes = text.split(":")
    return dtime(int(hours), int(minutes))


def next_digest(ts: float, minutes: float, tz: str) -> float:
    """The next digest boundary after ``ts``: multiples of the period from local midnight."""
    zone = ZoneInfo(tz)
    local = datetime.fromtimestamp(ts, zone)
    midnight = datetime.combine(local.date(), dtime(0), tzinfo=zone).timestamp()
    period = minutes * 60
    return midnight + math.floor((ts - midnight) / period + 1) * period


def _payload(item: Item, story: StoryAssignment, match: RuleMatch) -> state_alerts.AlertPayload:
    """What the message of this alert shows, stored with the alert."""
    return state_alerts.AlertPayload(
        rule_id=match.rule_id, rule_title=match.title or match.rule_id, rule_description=match.description or "",
        feed=item.feed, title=item.title, summary=item.summary, link=item.link, guid=item.guid,
        published=item.published.isoformat() if item.published else None, author=item.author,
        hits=tuple(state_alerts.PayloadHit(h.entity, h.alias, h.field, h.start, h.end, h.text) for h in match.hits),
        dedup_reason=story.reason, similarity=story.similarity)


def schedule(db: Database, channel: str, settings: ChannelSettings, rule_id: str, severity: Severity,
             cooldown: float | None, routing: RoutingSettings, now: float) -> tuple[float, str | None]:
    """(not_before, group_key) of a new alert of ``rule_id`` on ``channel``."""
    interval = cooldown if cooldown is not None else routing.group_interval
    group = f"rule:{rule_id}"
    last = state_outbox.last_for_rule(db, channel, rule_id)
    not_before, group_key = now + routing.group_wait, (group if routing.group_wait > 0 else None)
    if last is not None and last.state in ("pending", "sending") and last.not_before > now:
        not_before, group_key = last.not_before, group  # join the group still waiting
    elif last is not None and interval > 0:
        last_time = last.sent_at or last.not_before
        if last_time + interval > now:
            not_before, group_key = last_time + interval, group
    if settings.digest_minutes:
        not_before, group_key = next_digest(max(now, not_before), settings.digest_minutes, settings.timezone), "digest"
    bypass = settings.quiet_bypass_severity
    if not (bypass is not None and severity >= bypass):
        end = quiet_until(not_before, settings.quiet_hours, settings.timezone)
        if end is not None:
            not_before, group_key = end, group_key or "quiet"
    return not_before, group_key


def plan_alerts(db: Database, item: Item, story: StoryAssignment, matches: Sequence[RuleMatch],
                channels: Mapping[str, ChannelSettings], routing: RoutingSettings, now: float) -> list[int]:
    """Create the alerts and outbox rows this item calls for; returns the new alert ids.

    Runs in the caller's open transaction (no commit here).
    """
    new_ids: list[int] = []
    matched = {m.rule_id for m in matches}
    silences: list[state_silences.Silence] | None = None  # read once, when the first new alert needs it
    for match in matches:
        if not story.new_story and state_alerts.exists(db, story.story_id, match.rule_id):
            continue  # this story already alerted for this rule (the common case for duplicates):
            # skip building and serializing a payload that the insert would discard
        severity = match.severity
        alert_id = state_alerts.insert(db, story_id=story.story_id, rule_id=match.rule_id, item_key=item.key,
                                   severity=severity, payload=_payload(item, story, match), now=now)
        if alert_id is None:
            continue  # this story already alerted for this rule
        new_ids.append(alert_id)
        targets = list(match.channels) or list(channels)
        for name in targets:
            settings = channels.get(name)
            if settings is None:
                log.warning("rule %s names unknown channel %r; skipped", match.rule_id, name)
                continue
            if severity < settings.min_severity:
                continue
            if silences is None:
                silences = state_silences.active(db, now)
            silence = silencing(silences, rule_id=match.rule_id, entities={h.entity for h in match.hits},
                                channel=name, now=now)
            if silence is not None:
                state_outbox.enqueue(db, alert_id=alert_id, channel=name, kind="alert", not_before=now, now=now,
                                     silence_id=silence.id)
                metrics.ALERTS.labels("silenced").inc()
                continue
            not_before, group_key = schedule(db, name, settings, match.rule_id, severity,
                                             match.cooldown, routing, now)
            if state_outbox.enqueue(db, alert_id=alert_id, channel=name, kind="alert", not_before=not_before, now=now,
                                    group_key=group_key) is not None:
                metrics.ALERTS.labels("queued").inc()

    if routing.followup_after is not None and not story.new_story and story.new_source:
        _queue_followups(db, story, matched, channels, routing, now)
    return new_ids


def _queue_followups(db: Database, story: StoryAssignment, matched: set[str],
                     channels: Mapping[str, ChannelSettings], routing: RoutingSettings, now: float) -> None:
    alerts = state_alerts.of_story(db, story.story_id)
    if not alerts:
        return
    first = alerts[0]
    for name in state_outbox.channels_of_alert(db, first.id):
        if name not in channels:
            continue
        not_before = max(now, first.created + (routing.followup_after or 0.0))
        end = quiet_until(not_before, channels[name].quiet_hours, channels[name].timezone)
        if state_outbox.enqueue(db, alert_id=first.id, channel=name, kind="followup", not_before=end or not_before,
                                now=now, group_key=None, rearm=channels[name].updates == "edit") is not None:
            metrics.ALERTS.labels("queued").inc()
