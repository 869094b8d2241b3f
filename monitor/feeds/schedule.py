"""Polling policy: when to poll a feed next. Pure functions, no I/O, no clock reads
unless you leave ``now``/``rng`` at their defaults.

Why a policy at all: a fixed interval either hammers slow feeds or misses items
on fast ones, and a failing feed polled at full rate wastes the server's and our
time. This follows Miniflux (``model/feed.go ScheduleNextCheck``): entry
frequency, ``<ttl>``, Cache-Control max-age and Retry-After, clamped to
configured bounds, plus a "never miss" rule of our own: never wait longer than
half the time span the feed's current items cover, or items could scroll out
of the feed between two polls.

API::

    PollPolicy(interval=600, min_interval=60, max_interval=3600,
               max_backoff=21600, jitter=0.1, adaptive=True)
    next_poll_delay(policy, *, consecutive_errors=0, retry_after=None,
                    ttl_seconds=None, max_age=None, entries_per_week=None,
                    feed_window_seconds=None, rng=random.random) -> float
    parse_retry_after(value, *, now=None, max_seconds=21600) -> float | None
    parse_max_age(cache_control) -> int | None
    publishing_stats(published, *, now=None) -> (entries_per_week, window_seconds)

Order of ``next_poll_delay``: errors -> exponential backoff from ``interval``
(x2 per consecutive error, capped at ``max_backoff``); success -> ``interval``,
or with ``adaptive`` the Miniflux entry-frequency interval (one week /
weekly entries, clamped to [min_interval, max_interval]); then ``<ttl>`` and
max-age act as lower bounds (the publisher asked us to wait), the feed window
as an upper bound; Retry-After is a hard lower bound. Jitter is +/- ``jitter``
(a fraction) from ``rng`` so 1,000 feeds do not poll in lockstep. The result
is never below 1 s and never above ``max(max_interval, max_backoff)``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

WEEK = 7 * 24 * 3600.0
MAX_RETRY_AFTER = 6 * 3600.0


@dataclass(frozen=True)
class PollPolicy:
    """Per-feed polling bounds (seconds); ``jitter`` is a fraction of the delay."""

    interval: float = 600.0
    min_interval: float = 60.0
    max_interval: float = 3600.0
    max_backoff: float = 6 * 3600.0
    jitter: float = 0.1
    adaptive: bool = True

    def __post_init__(self) -> None:
        if not (0 < self.min_interval <= self.max_interval):
            raise ValueError("need 0 < min_interval <= max_interval")
        if self.interval <= 0 or self.max_backoff <= 0:
            raise ValueError("interval and max_backoff must be positive")
        if not (0 <= self.jitter < 1):
            raise ValueError("jitter is a fraction in [0, 1)")


def parse_retry_after(value: str | None, *, now: datetime | None = None,
                      max_seconds: float = MAX_RETRY_AFTER) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP-date, clamped to [0, max_seconds].

    Garbage or a missing value gives None (the caller uses its default backoff).
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isascii() and value.isdigit():  # str.isdigit() also accepts '²' and Arabic-Indic digits
        seconds = float(int(value[:12]))
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        now = now or datetime.now(UTC)
        seconds = (when - now).total_seconds()
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), max_seconds)


def parse_max_age(cache_control: str | None) -> int | None:
    """``max-age`` (or ``s-maxage``) from a Cache-Control header, in seconds; None if absent/bad."""
    if not cache_control:
        return None
    best: int | None = None
    for directive in cache_control.split(","):
        name, _, arg = directive.strip().partition("=")
        if name.strip().lower() in ("max-age", "s-maxage"):
            arg = arg.strip().strip('"')
            if arg.isdigit():
                seconds = int(arg[:12])
                best = seconds if best is None else max(best, seconds)
    return best


def publishing_stats(published: Iterable[datetime | None], *, now: datetime | None = None
                     ) -> tuple[float | None, float | None]:
    """(entries in the last week, time span the items cover) from item dates.

    Dates in the future (clock skew, bad feeds) are clamped to now. Returns
    (None, None) with no dates, and window None with fewer than two.
    """
    now = now or datetime.now(UTC)
    dates = sorted(min(d, now) for d in published if d is not None)
    if not dates:
        return None, None
    week_ago = now.timestamp() - WEEK
    weekly = float(sum(1 for d in dates if d.timestamp() >= week_ago))
    window = (dates[-1] - dates[0]).total_seconds() if len(dates) >= 2 else None
    return weekly, window


def next_poll_delay(
    policy: PollPolicy,
    *,
    consecutive_errors: int = 0,
    retry_after: float | None = None,
    ttl_seconds: float | None = None,
    max_age: float | None = None,
    entries_per_week: float | None = None,
    feed_window_seconds: float | None = None,
    rng: Callable[[], float] = random.random,
) -> float:
    """Seconds until the next poll of one feed (see the module docstring for the order)."""
    ceiling = max(policy.max_interval, policy.max_backoff)
    if consecutive_errors > 0:
        delay = min(policy.interval * (2.0 ** min(consecutive_errors, 30)), policy.max_backoff)
        delay = max(delay, policy.min_interval)
    else:
        delay = policy.interval
        if policy.adaptive:
            if entries_per_week is not None:
                delay = WEEK / entries_per_week if entries_per_week > 0 else policy.max_interval
            for floor in (ttl_seconds, max_age):
                if floor is not None and floor > 0:
                    delay = max(delay, float(floor))
            if feed_window_seconds is not None and feed_window_seconds > 0:
                delay = min(delay, feed_window_seconds / 2)
            delay = min(max(delay, policy.min_interval), policy.max_interval)
    if policy.jitter:
        delay *= 1.0 + policy.jitter * (2.0 * rng() - 1.0)
    if retry_after is not None and retry_after > 0:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return float(min(max(delay, 1.0), max(ceiling, MAX_RETRY_AFTER if retry_after else ceiling)))
