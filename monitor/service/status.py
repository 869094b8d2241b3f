"""Read-only views of the state for the CLI: ``monitor status`` and ``monitor feeds``.

They open the database read-only and hold no transaction open, so they can
run while the daemon writes (WAL) without blocking it or growing its WAL.

``monitor status`` says whether a daemon holds the state (its lock) and
prints the health note the daemon keeps in the state: which part is stuck or
degraded, and why. A note much older than the daemon's rhythm is itself news:
the daemon cannot write its state, or is stuck before it gets there.
Everything shown goes through ``monitor.secrets.redact``.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from monitor.config import Config
from monitor.secrets import redact
from monitor.service.progress import HEALTH_EVERY, HEALTH_KEY
from monitor.state import alerts as state_alerts
from monitor.state import feeds as state_feeds
from monitor.state import instances as state_instances
from monitor.state import meta as state_meta
from monitor.state import open_readonly
from monitor.state import outbox as state_outbox
from monitor.state.db import StateLock, private_url

#: A health note older than this while the daemon runs is stale.
STALE_AFTER = 3 * HEALTH_EVERY
#: An instance whose heartbeat is older than this is not listed as running.
INSTANCE_GONE_AFTER = 120.0


def _when(ts: float | None, now: float) -> str:
    if not ts:
        return "never"
    delta = ts - now
    stamp = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")
    return f"{stamp} ({_ago(delta)})"


def _ago(delta: float) -> str:
    future = delta > 0
    delta = abs(delta)
    if delta < 90:
        text = f"{delta:.0f}s"
    elif delta < 5400:
        text = f"{delta / 60:.0f}m"
    elif delta < 172800:
        text = f"{delta / 3600:.0f}h"
    else:
        text = f"{delta / 86400:.0f}d"
    return f"in {text}" if future else f"{text} ago"


def read_status(state: Path | str) -> str:
    """Daemon running or not, its health (what is stuck), feeds ok/failing, outbox depth, last alert;
    on a shared PostgreSQL state, each live instance and the leases it holds."""
    db = open_readonly(state)
    now = time.time()
    try:
        records = state_feeds.all_feeds(db)
        outbox = state_outbox.counts(db)
        last_alert = state_alerts.last_created(db)
        started = state_meta.get(db, "daemon_started")
        note = state_meta.get(db, HEALTH_KEY)
        alive = state_instances.live(db, since=now - INSTANCE_GONE_AFTER)
        feed_leases = state_feeds.leases_by_owner(db, now)
        channels = state_instances.channel_holders(db, now)
    finally:
        db.close()
    failing = sum(1 for r in records.values() if r.consecutive_errors > 0)
    last_poll = max((r.last_poll_at for r in records.values() if r.last_poll_at), default=None)
    if isinstance(state, Path):  # one daemon per SQLite state: its lock names it
        holder = StateLock.holder(state)
        since = f", started {_when(float(started), now)}" if started else ""
        daemon = (f"daemon:    running (pid {holder}){since}" if holder else
                  f"daemon:    not running (last started {_when(float(started), now)})" if started else
                  "daemon:    not started yet")
        running = holder is not None
    else:
        daemon = f"daemon:    {len(alive)} instance(s) running" if alive else "daemon:    no instance running"
        running = bool(alive)
    lines = [
        f"state:     {_where(state)}",
        daemon,
        *_health_lines(note, now, running=running),
        *_instance_lines(alive, feed_leases, channels, now),
        f"feeds:     {sum(1 for r in records.values() if r.last_poll_at)} known, {failing} failing, "
        f"last poll {_when(last_poll, now)}",
        f"outbox:    {outbox.get('pending', 0) + outbox.get('sending', 0)} waiting, {outbox.get('sent', 0)} sent, "
        f"{outbox.get('dead', 0)} dead",
        f"last alert: {_when(last_alert, now)}",
    ]
    return "\n".join(redact(line) for line in lines)


def _instance_lines(alive: list[state_instances.InstanceRecord], feed_leases: dict[str, int],
                    channels: dict[str, str], now: float) -> list[str]:
    """One line per live instance: where it runs, since when, what it holds right now."""
    lines = []
    for instance in alive:
        held = [name for name, owner in sorted(channels.items()) if owner == instance.id]
        lines.append(f"  instance {instance.id}: host {instance.host}, pid {instance.pid}, "
                     f"started {_when(instance.started, now)}, beat {_ago(instance.heartbeat - now)}; "
                     f"{feed_leases.get(instance.id, 0)} feed(s) polling now, delivers "
                     f"{', '.join(held) if held else 'no channel'}")
    return lines


def _health_lines(note: str | None, now: float, *, running: bool) -> list[str]:
    """The daemon's own verdict: ``health: ok``, or what is stuck/degraded, one part per line."""
    try:
        data: dict[str, Any] = json.loads(note) if note else {}
    except ValueError:
        data = {}
    if not data:
        return ["health:    unknown (no health note yet)"] if running else []
    age = now - float(data.get("at", 0))
    status = str(data.get("status", "unknown"))
    reasons = [str(r) for r in data.get("reasons", [])]
    stuck = {str(r) for r in data.get("stuck", [])}
    if not running:
        head = f"health:    last known {status} ({_ago(-age)}, daemon not running)"
    elif age > STALE_AFTER:
        head = (f"health:    UNKNOWN: last written {_ago(-age)}, the daemon cannot write its state or is "
                f"stuck; last known {status}")
    else:
        head = f"health:    {'STUCK' if status == 'stuck' else status}"
    return [head] + [f"  {'stuck' if r in stuck else 'degraded'}: {r}" for r in reasons]


def feed_table(config: Config) -> str:
    """One block per configured feed with its health, in plain words."""
    now = time.time()
    records: dict[str, state_feeds.FeedRecord] = {}
    if not isinstance(config.state, Path) or config.state.exists():
        db = open_readonly(config.state)
        try:
            records = state_feeds.all_feeds(db)
        finally:
            db.close()
    out = []
    for feed in config.feeds:
        row = records.get(feed.name)
        if row is None:
            out.append(f"{feed.name}: never polled\n  url: {feed.url}")
            continue
        health = "ok" if row.consecutive_errors == 0 else f"FAILING ({row.consecutive_errors} in a row)"
        block = [
            f"{feed.name}: {health}",
            f"  url:           {row.redirected_url or feed.url}",
            f"  last success:  {_when(row.last_success_at, now)}",
        ]
        if row.last_error:
            block.append(f"  last error:    {row.last_error_kind}: {row.last_error} "
                         f"({_when(row.last_error_at, now)})")
        interval = row.interval or config.feed_interval(feed)
        block += [
            f"  items seen:    {row.items_seen}   alerts: {row.alerts_created}",
            f"  interval:      {interval:.0f}s" + ("  (backing off)" if row.consecutive_errors else ""),
            f"  next poll:     {_when(row.next_poll_at, now)}",
        ]
        out.append("\n".join(block))
    # A feed URL may hold an expanded ${FEED_TOKEN}; stored errors may quote one.
    return redact("\n".join(out), config.secrets) if out else "no feeds configured"


def _where(state: Path | str) -> str:
    """The state's location as shown to a user (a URL without its password)."""
    return str(state) if isinstance(state, Path) else private_url(state)
