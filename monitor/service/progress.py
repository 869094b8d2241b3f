"""Is the daemon getting work done? Progress, not liveness.

A daemon whose feed jobs were lost, or whose every poll failed on a full
disk, kept answering ``/healthz`` with ``ok`` and kept pinging systemd's
watchdog, so nothing ever restarted it. ``Progress`` records what the work
itself does and turns it into reasons, each either *degraded* (worth a look:
``/healthz`` answers 503) or *stuck* (no progress for several intervals: the
watchdog stops pinging, so systemd restarts the service):

* **polls**: a feed is stuck when no poll of it has been *recorded* (the state
  took its result: items, not-modified, or the feed's own error) for
  ``STUCK_INTERVALS`` of its intervals after it was due, plus one fetch
  timeout and ``SLACK``. A poll whose result could not be written (state
  database error) does not count: the daemon runs, but it gets nothing done.
* **delivery**: stuck when messages have been due for ``DELIVERY_STUCK_AFTER``
  and no delivery attempt (sent, failed or given up) happened meanwhile.
* supervised tasks and the scheduler itself are judged by the daemon (it
  owns them) and added to the same report.

Pure bookkeeping over an injected clock, so tests decide what "later" is.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Progress", "Reason", "STUCK_INTERVALS", "SLACK", "DELIVERY_STUCK_AFTER", "HEALTH_KEY", "HEALTH_EVERY"]

#: Intervals a feed may go without a recorded poll before the daemon calls itself stuck.
STUCK_INTERVALS = 3
#: Added to every poll deadline: queueing for a concurrency slot, parsing, the commit.
SLACK = 10.0
#: Seconds messages may be due with no delivery attempt at all before delivery is stuck.
DELIVERY_STUCK_AFTER = 120.0
#: The daemon's health note in the state's ``meta`` table, rewritten at least this often
#: (``monitor status`` prints it, and calls it stale when much older).
HEALTH_KEY = "daemon_health"
HEALTH_EVERY = 30.0


@dataclass(frozen=True)
class Reason:
    """One thing that is wrong; ``part`` names what is affected (``feed x``, ``delivery``, ``task y``)."""

    part: str
    text: str
    stuck: bool = False

    def __str__(self) -> str:
        return f"{self.part}: {self.text}"


@dataclass
class _Feed:
    interval: float
    due_at: float                 # when its next poll should start
    recorded_at: float | None = None
    last_problem: str | None = None
    unrecorded: int = 0           # polls in a row whose result the state did not take


@dataclass
class Progress:
    """Per-feed and delivery progress; ``reasons(now)`` says what is late."""

    fetch_timeout: float
    clock: Callable[[], float] = time.monotonic
    feeds: dict[str, _Feed] = field(default_factory=dict)
    delivery_attempts: int = 0
    delivery_moved_at: float | None = None
    due_since: float | None = None   # messages due continuously since (None: nothing due)

    def grace(self, interval: float) -> float:
        return max(STUCK_INTERVALS * interval, self.fetch_timeout) + SLACK

    # -- feeds ---------------------------------------------------------------------

    def expect(self, feed: str, interval: float, delay: float) -> None:
        """``feed`` is (re)scheduled to poll in ``delay`` seconds (base interval ``interval``)."""
        now = self.clock()
        state = self.feeds.get(feed)
        if state is None:
            self.feeds[feed] = _Feed(interval, now + delay)
            return
        state.interval = interval
        if state.unrecorded == 0:
            state.due_at = now + delay  # after a recorded poll; else the feed stays as late as it was

    def polled(self, feed: str, *, recorded: bool, problem: str | None = None) -> None:
        """A poll of ``feed`` ended; ``recorded`` when the state took its result."""
        state = self.feeds.get(feed)
        if state is None:
            return
        if recorded:
            state.recorded_at = self.clock()
            state.unrecorded = 0
            state.last_problem = None
        else:
            state.unrecorded += 1
            state.last_problem = problem

    def forget(self, keep: set[str]) -> None:
        """Feeds a reload removed are no longer expected."""
        for name in set(self.feeds) - keep:
            del self.feeds[name]

    # -- delivery ------------------------------------------------------------------

    def delivery(self, attempts: int, due: bool) -> None:
        """The deliverer's attempt count, and whether messages are due right now."""
        now = self.clock()
        if attempts != self.delivery_attempts or self.delivery_moved_at is None:
            self.delivery_attempts = attempts
            self.delivery_moved_at = now
        if not due:
            self.due_since = None
        elif self.due_since is None:
            self.due_since = now

    # -- the verdict ---------------------------------------------------------------

    def reasons(self) -> list[Reason]:
        now = self.clock()
        out: list[Reason] = []
        for name, state in sorted(self.feeds.items()):
            late = now - (state.due_at + self.grace(state.interval))
            if late > 0:
                since = f"no poll recorded for {now - state.due_at:.0f} s after it was due"
                why = f" (last: {state.last_problem})" if state.last_problem else ""
                out.append(Reason(f"feed {name}", since + why, stuck=True))
            elif state.unrecorded:
                out.append(Reason(f"feed {name}", f"{state.unrecorded} polls in a row not recorded: "
                                  f"{state.last_problem}"))
        if self.due_since is not None and self.delivery_moved_at is not None:
            waiting = now - max(self.due_since, self.delivery_moved_at)
            if waiting > DELIVERY_STUCK_AFTER:
                out.append(Reason("delivery", f"messages due for {waiting:.0f} s and no delivery attempt",
                                  stuck=True))
        return out
