"""Read-only views of the state for the CLI: ``monitor status`` and ``monitor feeds``.

They open the database read-only and hold no transaction open, so they can
run while the daemon writes (WAL) without blocking it or growing its WAL.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from monitor.config import Config
from monitor.state import alerts as state_alerts
from monitor.state import feeds as state_feeds
from monitor.state import meta as state_meta
from monitor.state import open_readonly
from monitor.state import outbox as state_outbox
from monitor.state.db import private_url


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
    """Uptime-ish summary: feeds ok/failing, outbox depth, last alert."""
    db = open_readonly(state)
    now = time.time()
    try:
        records = state_feeds.all_feeds(db)
        outbox = state_outbox.counts(db)
        last_alert = state_alerts.last_created(db)
        started = state_meta.get(db, "daemon_started")
    finally:
        db.close()
    failing = sum(1 for r in records.values() if r.consecutive_errors > 0)
    last_poll = max((r.last_poll_at for r in records.values() if r.last_poll_at), default=None)
    lines = [
        f"state:     {_where(state)}",
        f"daemon:    started {_when(float(started), now)}" if started else "daemon:    not started yet",
        f"feeds:     {sum(1 for r in records.values() if r.last_poll_at)} known, {failing} failing, "
        f"last poll {_when(last_poll, now)}",
        f"outbox:    {outbox.get('pending', 0) + outbox.get('sending', 0)} waiting, {outbox.get('sent', 0)} sent, "
        f"{outbox.get('dead', 0)} dead",
        f"last alert: {_when(last_alert, now)}",
    ]
    return "\n".join(lines)


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
    return "\n".join(out) if out else "no feeds configured"


def _where(state: Path | str) -> str:
    """The state's location as shown to a user (a URL without its password)."""
    return str(state) if isinstance(state, Path) else private_url(state)
