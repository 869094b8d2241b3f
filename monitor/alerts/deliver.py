"""Deliver stage: drain the outbox through each channel's sender, crash-safely, one loop per channel.

Why this shape:

* **Claim, send, mark.** A row is committed as 'sending' before the send and
  'sent' after it (``monitor.state.outbox``). After a kill -9 the rows found
  'sending' are re-queued as *possible repeats*: at most the in-flight
  message is sent twice, and it says so. Nothing is lost.
* **One asyncio task per channel**, each with its own rate limiter, so an SMTP
  outage never delays Telegram.
* **Typed senders, one retrier.** A sender (``monitor.alerts.senders``) speaks
  its channel's protocol and returns a ``SendResult`` with a ``FailureReason``;
  what to do about a failure is decided here, the same way for every channel,
  by the channel's give-up rules (``ChannelSettings.give_up``).
* **No stuck channel.** A failure is *charged* to the message when it is the
  message's fault by nature (bad_request, too_large) or when the channel
  delivered other messages since this one first failed; a charged message is
  set aside with its own backoff (the line moves on) and goes ``dead`` once
  its rule is spent. An uncharged failure may be the channel's: the next
  message is tried at once (the probe). If the probe gets through, the
  channel works and the first one will be charged when it fails again; if it
  fails too, the channel is down: nothing is charged, the channel backs off
  and starts again from the oldest message, so order is kept through an
  outage. A 429 is never probed: the channel waits ``retry_after`` and sends
  the same message again.
* **Updates thread.** A message about a story already sent on the channel is
  a reply to the story's first message (Telegram), an edit of it (Telegram,
  ``updates: edit``), or in its email thread (``In-Reply-To``/``References``).
* **One instance per channel.** With an ``instance`` name (the daemon's), a
  channel's loop delivers only while it holds the channel's lease in the
  state (``monitor.state.instances``): several daemons on one database keep
  each chat's order and its rate limit, because only the holder sends. Taking
  a lease over from an instance that died re-queues what it left in flight
  (possible repeats) and starts the rate limiter from the channel's last
  minute of sends.
* **A state database error never ends a loop**: it is logged, the loop backs
  off and tries again; a send that went out but could not be recorded is
  recorded first when the database is back.
* SQLite is used only from the event-loop thread and never across an
  ``await`` inside a transaction; blocking sends run in worker threads.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import random
import re
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from markupsafe import escape

from monitor import metrics
from monitor.alerts.render import Renderer, clean_subject, notice_subject, notice_telegram, notice_text
from monitor.alerts.senders import (
    MESSAGE_FAULTS,
    FailureReason,
    MessageStyle,
    OutgoingMessage,
    Sender,
    SendResult,
    SentAs,
    build_sender,
)
from monitor.alerts.senders.telegram import TelegramSender
from monitor.alerts.settings import ChannelSettings
from monitor.alerts.silences import silencing
from monitor.errors import DeliveryError
from monitor.secrets import redact
from monitor.state import instances as state_instances
from monitor.state import meta as state_meta
from monitor.state import outbox as state_outbox
from monitor.state import silences as state_silences
from monitor.state.db import Database, StateError
from monitor.state.outbox import AlertView, Claimed, NoticeView, ThreadRoot, View

__all__ = ["Deliverer", "DeliveryProgress", "DeliveryReport", "backoff", "send_test_message"]

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]

#: Longest wait between two tries of a loop whose state database fails.
STATE_RETRY_MAX = 60.0
#: meta key remembering where a Telegram chat moved (a group upgraded to a supergroup).
_MOVED = "telegram_chat_moved:"


@dataclass
class DeliveryReport:
    """What a drain did: alert rows sent, failed attempts, rows gone dead, rows silenced, rows still waiting.

    ``messages`` counts what the channels received: one message carries every
    rule that fired on a story (several rows), so it is usually below ``sent``.
    """

    sent: int = 0
    failed: int = 0
    dead: int = 0
    pending: int = 0
    messages: int = 0
    silenced: int = 0


@dataclass(frozen=True)
class DeliveryProgress:
    """What the daemon's health and watchdog read: ``attempts`` grows with every send that
    ended (sent, failed or given up); ``stopped`` names channels whose loop ended with an error."""

    attempts: int
    stopped: tuple[str, ...] = ()


class _RateLimiter:
    def __init__(self, min_interval: float, per_minute: int | None, clock: Callable[[], float]) -> None:
        self.min_interval, self.per_minute, self.clock = min_interval, per_minute, clock
        self.sent: collections.deque[float] = collections.deque()

    def delay(self) -> float:
        now = self.clock()
        wait = 0.0
        if self.sent and self.min_interval:
            wait = max(wait, self.sent[-1] + self.min_interval - now)
        if self.per_minute:
            while self.sent and self.sent[0] <= now - 60:
                self.sent.popleft()
            if len(self.sent) >= self.per_minute:
                wait = max(wait, self.sent[0] + 60 - now)
        return max(0.0, wait)

    def record(self, at: float | None = None) -> None:
        self.sent.append(self.clock() if at is None else at)
        keep = max(self.per_minute or 1, 1)
        while len(self.sent) > keep:
            self.sent.popleft()


def backoff(attempts: int, settings: ChannelSettings, retry_after: float | None, rng: random.Random) -> float:
    """Exponential backoff with full jitter in its upper half; a server's retry_after is a floor."""
    base: float = min(settings.backoff_max, settings.backoff_initial * (2 ** max(0, attempts - 1)))
    delay = base / 2 + rng.random() * base / 2
    if retry_after is not None:
        delay = max(delay, min(retry_after, 3600.0))
    return delay


@dataclass
class _Line:
    """One channel's delivery state between two messages (in memory: a restart starts afresh)."""

    paused_until: float = 0.0
    down_rounds: int = 0                      # probes failed in a row: the channel is down
    suspect: tuple[int, ...] = ()             # rows that failed, not yet charged: left out of the probe's claim
    delivered: int = 0                        # messages this channel took (since start)
    failing_since: dict[int, int] = field(default_factory=dict)  # head row -> ``delivered`` at its first failure
    unrecorded: Callable[[], None] | None = None  # a state write that failed after a send: done before anything else
    state_errors: int = 0
    state_error: str | None = None
    down_reason: str | None = None
    lease_until: float = 0.0                  # this instance holds the channel's lease until then

    def step_failed(self, error: str) -> float:
        """A delivery step failed on the state or on a bug: note why; seconds to back off."""
        self.state_errors += 1
        self.state_error = error
        return min(STATE_RETRY_MAX, 0.5 * 2.0 ** min(self.state_errors - 1, 10))


@dataclass(frozen=True)
class _Composed:
    """A claimed message rendered for its sender."""

    parts: list[OutgoingMessage]
    subject: str | None = None


@dataclass
class _Outcome:
    result: SendResult
    message_id: str | None = None
    sent_as: SentAs = SentAs.MESSAGE
    parts: int = 0
    subject: str | None = None


class Deliverer:
    """Sends due outbox rows on every channel; see the module docstring.

    ``clock`` and ``sleep`` are injectable so tests run an hour of outage in
    virtual time; ``run`` waits on real events (wake, stop) as the daemon needs.
    """

    def __init__(self, db: Database, channels: Mapping[str, ChannelSettings], *,
                 templates_dir: Path | None = None, console: TextIO = sys.stdout,
                 clock: Callable[[], float] = time.time, sleep: Sleep = asyncio.sleep,
                 ops_channel: str | None = None, instance: str | None = None, lease: float = 300.0) -> None:
        self.db = db
        #: With a name, each channel is delivered only while this instance holds its lease.
        self.instance = instance
        self.lease = lease
        self.channels = dict(channels)
        self.console = console
        self.clock = clock
        self.sleep = sleep
        self.ops_channel = ops_channel
        self._templates_dir = templates_dir
        self.renderers = {n: Renderer(templates_dir, tz=c.timezone) for n, c in self.channels.items()}
        self.limiters = {n: _RateLimiter(*c.limits(), clock) for n, c in self.channels.items()}
        self._senders: dict[str, Sender] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._lines: dict[str, _Line] = {}
        self._wake: dict[str, asyncio.Event] = {}
        self._recovered = False
        self._run_stop: asyncio.Event | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._rng = random.Random()
        self.report = DeliveryReport()

    # -- configuration ------------------------------------------------------------

    def update_channels(self, channels: Mapping[str, ChannelSettings], ops_channel: str | None = None) -> None:
        """After a config reload: new settings apply to the next message.

        A channel added by the reload gets its delivery task at once (when
        ``run`` is going); a removed channel's task finishes a send in flight,
        records it, and stops: its undelivered rows stay pending (``monitor
        alerts`` shows them) until the channel comes back. A channel whose
        limits did not change keeps its rate limiter (no burst after a reload);
        one whose URL or options changed gets a new sender and a fresh start
        (a pause for an outage or a bad token ends: the user may just have fixed it).
        """
        old = self.channels
        self.channels = dict(channels)
        self.ops_channel = ops_channel
        for n, c in self.channels.items():
            self.renderers[n] = Renderer(self._templates_dir, tz=c.timezone)
            if n not in old or old[n].limits() != c.limits() or n not in self.limiters:
                self.limiters[n] = _RateLimiter(*c.limits(), self.clock)
            if n in old and old[n] != c:
                previous = self._lines.get(n)
                self._lines[n] = _Line(unrecorded=previous.unrecorded if previous else None)
                self._drop_sender(n)
        for n in set(old) - set(self.channels):
            log.info("channel %s removed by reload: its delivery stops; undelivered rows stay queued", n)
            self._drop_sender(n)
        if self._run_stop is not None:
            for n in self.channels:
                self._spawn(n)
        self.wake()

    def _drop_sender(self, name: str) -> None:
        sender = self._senders.pop(name, None)
        if sender is not None:
            try:
                task = asyncio.get_running_loop().create_task(sender.aclose())
            except RuntimeError:  # no loop: senders live only inside run/drain, nothing is open
                return
            self._closing.add(task)  # the loop keeps only a weak reference to a task
            task.add_done_callback(self._closing.discard)

    def _sender(self, name: str, settings: ChannelSettings) -> Sender:
        sender = self._senders.get(name)
        if sender is None:
            sender = build_sender(name, settings, console=self.console)
            if isinstance(sender, TelegramSender):
                moved = state_meta.get(self.db, _MOVED + sender.target.chat)
                if moved:
                    sender.follow(moved)
            self._senders[name] = sender
        return sender

    async def _close_senders(self) -> None:
        senders, self._senders = list(self._senders.values()), {}
        for sender in senders:
            await sender.aclose()

    async def aclose(self) -> None:
        """Close every sender's connections (the daemon's stop)."""
        await self._close_senders()

    # -- the outbox ------------------------------------------------------------------

    def enqueue_notice(self, channel: str, text: str) -> int:
        """Queue an operational message (not an alert) on ``channel``; raises DeliveryError if unknown."""
        if channel not in self.channels:
            raise DeliveryError(channel, "no such channel")
        row = state_outbox.enqueue_notice(self.db, channel, text, self.clock())
        self.wake()
        return row

    def wake(self) -> None:
        """New outbox rows were committed: look now instead of at the next timer."""
        for ev in self._wake.values():
            ev.set()

    def _recover(self) -> None:
        if not self._recovered and self.instance is None:  # with leases: per channel, when its lease is taken
            n = state_outbox.recover_inflight(self.db)
            if n:
                log.warning("%d message(s) were being sent when the daemon stopped; resending, marked as possible "
                            "repeats", n)
            self._recovered = True
        self.update_gauges()

    def update_gauges(self) -> None:
        """The outbox gauges of /metrics: its depth, and the dead messages by channel and reason."""
        try:
            metrics.OUTBOX_DEPTH.set(state_outbox.depth(self.db))
            metrics.OUTBOX_DEAD.clear()
            for (channel, reason), n in state_outbox.dead_by_reason(self.db).items():
                metrics.OUTBOX_DEAD.labels(channel, reason).set(n)
        except StateError as exc:
            log.warning("metrics: cannot read the outbox: %s", redact(str(exc)))

    def problems(self) -> list[str]:
        """What ``/healthz`` should say about delivery: channels whose state database fails, or that are down."""
        out = []
        for name, line in sorted(self._lines.items()):
            if line.state_errors:
                out.append(f"delivery {name}: state database failing ({line.state_error})")
            elif line.down_rounds >= 3:
                out.append(f"delivery {name}: channel down ({line.down_reason})")
        return out

    # -- running -----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set; an in-flight send is allowed to finish and be recorded.

        One task per channel; ``update_channels`` adds tasks for channels a
        reload adds while this runs.
        """
        self._tasks = {}
        try:
            await self._until_recovered(stop)
            self._run_stop = stop  # from here a reload may start loops: nothing is left 'sending' by a crash
            for n in self.channels:
                self._spawn(n)
            await stop.wait()
            while any(not t.done() for t in self._tasks.values()):
                await asyncio.wait([t for t in self._tasks.values() if not t.done()])
        finally:
            self._run_stop = None
            for t in self._tasks.values():
                t.cancel()
            await self._close_senders()

    async def _until_recovered(self, stop: asyncio.Event | None, deadline: float | None = None) -> bool:
        """Re-queue what a crash left in flight; a state error is retried, not fatal."""
        delay = 0.5
        while True:
            try:
                self._recover()
                return True
            except StateError as exc:
                log.error("delivery: cannot re-queue messages in flight (%s); retrying in %.0fs",
                          redact(str(exc)), delay)
                if deadline is not None and self.clock() + delay > deadline:
                    return False
                await self._wait("", delay, stop)
                if stop is not None and stop.is_set():
                    return False
                delay = min(STATE_RETRY_MAX, delay * 2)

    def _spawn(self, name: str) -> None:
        """Start ``name``'s delivery loop under ``run`` unless one is alive."""
        task = self._tasks.get(name)
        if task is not None and not task.done():
            return  # a loop still alive (maybe finishing a send) picks up the new settings itself
        task = asyncio.create_task(self._channel_loop(name, stop=self._run_stop), name=f"deliver:{name}")
        task.add_done_callback(self._task_done)
        self._tasks[name] = task

    def restart_stopped(self) -> tuple[str, ...]:
        """Start again the delivery loops that ended with an error (under ``run``); their names.
        Nothing else changes: settings, senders, rate limiters and the ops channel stay."""
        stopped = self.progress().stopped
        if self._run_stop is not None:
            for name in stopped:
                if name in self.channels:
                    self._spawn(name)
        return stopped

    def progress(self) -> DeliveryProgress:
        """How far delivery got; see ``DeliveryProgress``."""
        stopped = tuple(sorted(name for name, task in self._tasks.items()
                               if task.done() and not task.cancelled() and task.exception() is not None))
        return DeliveryProgress(self.report.sent + self.report.failed + self.report.dead, stopped)

    @staticmethod
    def _task_done(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("delivery task %s failed", task.get_name(), exc_info=task.exception())

    async def drain(self, timeout: float = 60.0) -> DeliveryReport:
        """Send everything due now (waiting out backoffs that end within ``timeout``), then return."""
        self.report = DeliveryReport()
        deadline = self.clock() + timeout
        try:
            if await self._until_recovered(None, deadline):
                tasks = [asyncio.create_task(self._channel_loop(n, deadline=deadline)) for n in self.channels]
                await asyncio.gather(*tasks)
        finally:
            await self._close_senders()
        try:
            self.report.pending = state_outbox.depth(self.db)
        except StateError as exc:
            log.warning("delivery: cannot count what is left: %s", redact(str(exc)))
        self.update_gauges()
        return self.report

    async def _wait(self, name: str, seconds: float, stop: asyncio.Event | None) -> None:
        """Wait ``seconds``; under ``run`` a wake or the stop ends it early, under ``drain`` it is ``self.sleep``."""
        seconds = max(0.0, seconds)
        if stop is None:
            await self.sleep(seconds)
            return
        ev = self._wake.setdefault(name, asyncio.Event())
        waiters = [asyncio.ensure_future(ev.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
        ev.clear()

    async def _channel_loop(self, name: str, *, stop: asyncio.Event | None = None,
                            deadline: float | None = None) -> None:
        self._wake.setdefault(name, asyncio.Event())
        while not (stop is not None and stop.is_set()):
            settings = self.channels.get(name)
            if settings is None:
                return  # removed by a reload; its rows wait for it to come back
            line = self._lines.setdefault(name, _Line())  # a reload that changed the channel starts a new one
            try:
                wait = await self._step(name, settings, line)
                line.state_errors, line.state_error = 0, None
            except StateError as exc:
                wait = line.step_failed(redact(str(exc))[:200])
                metrics.DELIVERY_STATE_ERRORS.labels(name).inc()
                log.error("channel %s: state database error (%s); delivery retries in %.1fs",
                          name, line.state_error, wait)
            except Exception:  # a bug in one message must not end the channel's delivery
                wait = line.step_failed("internal error (see the log)")
                log.exception("channel %s: unexpected error in delivery; retrying in %.1fs", name, wait)
            if wait is None:
                if deadline is not None:
                    return
                wait = 60.0
            if wait > 0:
                if deadline is not None and self.clock() + wait > deadline:
                    return
                await self._wait(name, wait, stop)

    async def _step(self, name: str, settings: ChannelSettings, line: _Line) -> float | None:
        """Do one thing on the channel; returns how long to wait before the next (None: nothing queued)."""
        if line.unrecorded is not None:
            line.unrecorded()
            line.unrecorded = None
        now = self.clock()
        if line.paused_until > now:
            return line.paused_until - now
        if not self._hold_lease(name, line, now):
            return self.lease / 3  # another instance delivers this channel; ask again before its lease ends
        limiter_wait = self.limiters[name].delay()
        if limiter_wait > 0:
            return limiter_wait
        claimed = state_outbox.claim(self.db, name, now, settings.max_group, exclude=line.suspect)
        if claimed is None:
            if line.suspect:
                # The head failed and nothing else is queued to tell whether the channel works:
                # count it as a failed probe (back off, then the head again).
                self._channel_down(name, settings, line, now, None)
                return 0.0
            nxt = state_outbox.next_due(self.db, name)
            return None if nxt is None else max(0.0, nxt - now)
        await self._deliver(name, settings, line, claimed)
        return 0.0

    def _hold_lease(self, name: str, line: _Line, now: float) -> bool:
        """Hold (take or renew) the channel's lease; renewed once a third of it has passed."""
        if self.instance is None:
            return True
        if line.lease_until - now > self.lease * 2 / 3:
            return True
        had = line.lease_until > now
        if not state_instances.take_channel(self.db, name, owner=self.instance, now=now, seconds=self.lease):
            line.lease_until = 0.0
            return False
        line.lease_until = now + self.lease
        if not had:
            # Taken over: what the last holder left 'sending' may have gone out; its sends of
            # the last minute count against the channel's rate limit.
            n = state_outbox.recover_inflight(self.db, channel=name)
            if n:
                log.warning("channel %s: %d message(s) were being sent by an instance that stopped; resending, "
                            "marked as possible repeats", name, n)
            for at in state_outbox.sent_times(self.db, name, since=now - 60.0):
                self.limiters[name].record(at)
        return True

    def holds(self, name: str, now: float) -> bool:
        """Whether this instance delivers ``name`` now (always, without an instance name)."""
        if self.instance is None:
            return True
        line = self._lines.get(name)
        return line is not None and line.lease_until > now

    def release_leases(self) -> None:
        """Give up this instance's channel leases (a clean stop: another instance takes over at once)."""
        if self.instance is not None:
            state_instances.release_channels(self.db, self.instance)
            for line in self._lines.values():
                line.lease_until = 0.0

    # -- one message ----------------------------------------------------------------------

    async def _deliver(self, name: str, settings: ChannelSettings, line: _Line, claimed: Claimed) -> None:
        try:
            await self._deliver_claimed(name, settings, line, claimed)
        except Exception:
            if line.unrecorded is None:
                # Claimed ('sending') but not settled: put the rows back in line before anything else,
                # or they would wait as 'sending' until a restart.
                line.unrecorded = self._releaser(claimed.ids, claimed.parts_sent, claimed.message_id)
            raise

    def _releaser(self, ids: tuple[int, ...], parts: int, message_id: str | None) -> Callable[[], None]:
        def release() -> None:
            state_outbox.release(self.db, ids, parts, message_id)
        return release

    async def _deliver_claimed(self, name: str, settings: ChannelSettings, line: _Line, claimed: Claimed) -> None:
        sender = self._sender(name, settings)  # a sender that cannot be built is the channel's problem: raised
        try:
            views = state_outbox.load_views(self.db, claimed.ids)
            views, silenced = self._silence(name, views)
            for view, silence_id in silenced:
                state_outbox.mark_silenced(self.db, [view.outbox_id], silence_id)
            if silenced:
                self.report.silenced += len(silenced)
                metrics.ALERTS.labels("silenced").inc(len(silenced))
            if not views:
                return
            claimed = dataclasses.replace(claimed, ids=tuple(v.outbox_id for v in views))
            composed = self._compose(name, settings, sender, views)
        except StateError:
            raise
        except Exception as exc:  # a row or template that cannot become a message: that message's fault
            log.exception("channel %s: cannot build the message of outbox %s", name, list(claimed.ids))
            self._settle(name, settings, line, claimed, [], _Outcome(SendResult.failed(
                FailureReason.BAD_REQUEST, f"cannot build the message: {type(exc).__name__}")))
            return
        outcome = await self._send_parts(name, sender, claimed, composed)
        self._settle(name, settings, line, claimed, views, outcome)

    def _silence(self, name: str, views: list[View]) -> tuple[list[View], list[tuple[AlertView, int]]]:
        """Split off the alert views a silence in force now holds back (it may have begun after they were queued)."""
        now = self.clock()
        active = state_silences.active(self.db, now)
        if not active:
            return views, []
        keep: list[View] = []
        held: list[tuple[AlertView, int]] = []
        for view in views:
            silence = None
            if isinstance(view, AlertView):
                silence = silencing(active, rule_id=view.rule_id, entities={h.entity for h in view.payload.hits},
                                    channel=name, now=now)
            if silence is not None and isinstance(view, AlertView):
                held.append((view, silence.id))
            else:
                keep.append(view)
        return keep, held

    def _compose(self, name: str, settings: ChannelSettings, sender: Sender, views: Sequence[View]) -> _Composed:
        """Render the claimed rows for this sender, threaded under the story's first message when there is one."""
        renderer = self.renderers[name]
        notices = [v for v in views if isinstance(v, NoticeView)]
        alerts = [v for v in views if isinstance(v, AlertView)]
        head = views[0].outbox_id
        if notices:  # claim never puts a notice with alerts: notices have no group key and no story
            text = notice_text(notices)
            if sender.style is MessageStyle.TELEGRAM:
                return _Composed([OutgoingMessage(text=p, html=p) for p in notice_telegram(notices)])
            subject = notice_subject(notices)
            return _Composed([OutgoingMessage(text=text, subject=subject, key=f"notice.o{head}.{name}")], subject)
        if sender.style is MessageStyle.CONSOLE:
            return _Composed([OutgoingMessage(text=renderer.console(alerts))])
        stories = {v.story_id for v in alerts}
        story = alerts[0]
        root: ThreadRoot | None = None
        if len(stories) == 1 and sender.threads and settings.updates != "new":
            root = state_outbox.thread_root(self.db, name, story.story_id)
        story_key = f"story-{story.story_id}-{int(story.story_created)}.{name}"
        if len(stories) > 1:
            key = f"digest.o{head}.{name}"
        else:
            key = story_key if root is None else f"{story_key}.o{head}"
        if sender.style is MessageStyle.TELEGRAM:
            if root is not None and settings.updates == "edit" and sender.edits and root.parts == 1 \
                    and root.stories == 1:
                edited = self._edit(name, renderer, story.story_id, alerts)
                if edited is not None:
                    return _Composed([OutgoingMessage(text=edited, html=edited, edit=root.message_id,
                                                      reply_to=root.message_id)])
            pieces = renderer.telegram(alerts)
            return _Composed([OutgoingMessage(text=p, html=p, reply_to=root.message_id if root and i == 0 else None)
                              for i, p in enumerate(pieces)])
        mail = renderer.email(alerts, with_html=sender.style is not MessageStyle.TEXT)
        subject = mail.subject
        if root is not None and root.subject:
            subject = clean_subject("Re: " + re.sub(r"^(?:Re:\s*)+", "", root.subject))
        if sender.style is MessageStyle.TEXT:
            return _Composed([OutgoingMessage(text=mail.text, subject=subject)], subject)
        return _Composed([OutgoingMessage(text=mail.text, html=mail.html, subject=subject, key=key,
                                          reply_to=root.message_id if root else None,
                                          references=(root.message_id,) if root else ())], subject)

    def _edit(self, name: str, renderer: Renderer, story_id: int, claimed: Sequence[AlertView]) -> str | None:
        """The story's first message as it reads now (every rule sent or claimed, today's sources), if it fits."""
        ids = state_outbox.sent_alert_ids(self.db, name, story_id)
        ids += [v.outbox_id for v in claimed if v.kind == "alert" and v.outbox_id not in ids]
        views = [dataclasses.replace(v, possible_repeat=False, earlier_rules=())
                 for v in state_outbox.load_views(self.db, ids) if isinstance(v, AlertView)]
        if not views:
            return None
        pieces = renderer.telegram(views)
        return pieces[0] if len(pieces) == 1 else None

    async def _send_parts(self, name: str, sender: Sender, claimed: Claimed, composed: _Composed) -> _Outcome:
        """Send the pieces not yet accepted; the first piece's id names the message."""
        message_id = claimed.message_id
        sent_as = SentAs.MESSAGE
        parts = composed.parts
        for idx in range(claimed.parts_sent, len(parts)):
            if idx > claimed.parts_sent:
                wait = self.limiters[name].delay()
                if wait:
                    await self.sleep(wait)
            self.limiters[name].record()
            try:
                result = await sender.send(parts[idx])
            except Exception as exc:  # a sender's bug is a failed attempt, judged by the give-up rules
                log.exception("channel %s: the sender raised", name)
                result = SendResult.failed(FailureReason.UNKNOWN, f"the sender raised {type(exc).__name__}")
            if result.moved_to is not None and isinstance(sender, TelegramSender):
                self._remember_move(name, sender, result.moved_to)
            if not result.delivered:
                if idx > claimed.parts_sent:
                    state_outbox.mark_parts(self.db, claimed.ids, idx, message_id)
                return _Outcome(result, message_id=message_id, parts=idx)
            if idx == 0:
                message_id, sent_as = result.message_id, result.sent_as
            if idx + 1 < len(parts):
                try:
                    state_outbox.mark_parts(self.db, claimed.ids, idx + 1, message_id)
                except StateError:
                    self._line(name).unrecorded = self._releaser(claimed.ids, idx + 1, message_id)
                    raise
        return _Outcome(SendResult.ok(message_id, sent_as), message_id=message_id, sent_as=sent_as,
                        parts=len(parts), subject=composed.subject)

    def _line(self, name: str) -> _Line:
        return self._lines.setdefault(name, _Line())

    def _remember_move(self, name: str, sender: TelegramSender, chat: str) -> None:
        log.warning("channel %s: Telegram chat %s moved to %s; remembered for later messages", name,
                    sender.target.chat, chat)
        state_meta.put(self.db, _MOVED + sender.target.chat, chat)

    # -- what a result means ----------------------------------------------------------------

    def _settle(self, name: str, settings: ChannelSettings, line: _Line, claimed: Claimed,
                views: Sequence[View], outcome: _Outcome) -> None:
        """Record a delivery or a failure, and decide what the channel does next (see the module docstring)."""
        now = self.clock()
        result = outcome.result
        if result.delivered:
            line.delivered += 1
            line.down_rounds, line.suspect, line.paused_until, line.down_reason = 0, (), 0.0, None
            line.failing_since.pop(claimed.ids[0], None)
            record = self._recorder(claimed, now, outcome)
            try:
                record()
            except StateError:
                line.unrecorded = record  # sent: record it before anything else, never send it again
                raise
            return
        reason = result.reason or FailureReason.UNKNOWN
        error = redact(result.detail or reason.value)
        self.report.failed += 1
        metrics.DELIVERY_FAILURES.labels(name, reason.value).inc()
        metrics.ALERTS.labels("retry").inc(len(claimed.ids))
        first_failed = claimed.first_failed_at
        # A row that failed before this process started counts as failing since the start.
        since = line.failing_since.setdefault(claimed.ids[0], 0 if first_failed is not None else line.delivered)
        charged = reason in MESSAGE_FAULTS or (first_failed is not None and line.delivered > since)
        if charged:
            rule = settings.rule(reason)
            failures = claimed.failures + 1
            failing_for = now - first_failed if first_failed is not None else 0.0
            if failures >= rule.attempts or failing_for >= rule.deadline:
                line.failing_since.pop(claimed.ids[0], None)
                self._dead(name, settings, claimed, views, reason, error, now)
            else:
                delay = backoff(failures, settings, result.retry_after, self._rng)
                state_outbox.record_failure(self.db, claimed.ids, reason=reason.value, error=error, now=now,
                                            retry_at=now + delay)
                log.warning("channel %s (%s): outbox %s failed (%s: %s); set aside for %.1fs, the rest goes on",
                            name, settings.private_url(), list(claimed.ids), reason.value, error, delay)
            return
        state_outbox.record_failure(self.db, claimed.ids, reason=reason.value, error=error, now=now, retry_at=None)
        if reason is FailureReason.RATE_LIMITED:
            wait = result.retry_after if result.retry_after is not None else backoff(1, settings, None, self._rng)
            line.paused_until = now + min(wait, 3600.0)
            log.warning("channel %s: rate limited; waiting %.1fs before the same message", name, wait)
            return
        if not line.suspect:
            line.suspect = claimed.ids  # the next attempt is another message: does the channel work at all?
            if result.retry_after:
                line.paused_until = now + min(result.retry_after, 3600.0)
            log.warning("channel %s (%s): send failed (%s: %s); trying the next message", name,
                        settings.private_url(), reason.value, error)
            return
        self._channel_down(name, settings, line, now, result, reason, error)

    def _channel_down(self, name: str, settings: ChannelSettings, line: _Line, now: float,
                      result: SendResult | None, reason: FailureReason | None = None, error: str = "") -> None:
        """Two messages in a row failed (or the only one did again): back off, then start from the oldest."""
        line.suspect = ()
        line.down_rounds += 1
        retry_after = result.retry_after if result is not None else None
        delay = backoff(line.down_rounds, settings, retry_after, self._rng)
        line.paused_until = now + delay
        if reason is not None:
            line.down_reason = f"{reason.value}: {error}"[:200]
        log.warning("channel %s (%s): not delivering (%s); retrying from the oldest message in %.1fs "
                    "(nothing is given up while the whole channel fails)", name, settings.private_url(),
                    line.down_reason or "failed again", delay)

    def _recorder(self, claimed: Claimed, now: float, outcome: _Outcome) -> Callable[[], None]:
        """Mark a delivered message sent (and count it); kept to be run again while the database fails."""
        def record() -> None:
            state_outbox.mark_sent(self.db, claimed.ids, now, message_id=outcome.message_id,
                                   sent_as=outcome.sent_as.value, subject=outcome.subject, parts=outcome.parts)
            self.report.sent += len(claimed.ids)
            self.report.messages += 1
            metrics.ALERTS.labels("sent").inc(len(claimed.ids))
            metrics.DELIVERY_LATENCY.observe(max(0.0, now - claimed.created))
            try:  # a sent message changes the depth only; the dead gauges change in _dead
                metrics.OUTBOX_DEPTH.set(state_outbox.depth(self.db))
            except StateError as exc:
                log.warning("metrics: cannot read the outbox: %s", redact(str(exc)))
        return record

    def _dead(self, name: str, settings: ChannelSettings, claimed: Claimed, views: Sequence[View],
              reason: FailureReason, error: str, now: float) -> None:
        starts = state_outbox.dead_count(self.db, name) == 0
        state_outbox.mark_dead(self.db, claimed.ids, reason=reason.value, error=error, now=now)
        self.report.dead += len(claimed.ids)
        metrics.ALERTS.labels("dead").inc(len(claimed.ids))
        metrics.DEAD_LETTERS.labels(name, reason.value).inc(len(claimed.ids))
        log.error("channel %s (%s): giving up on outbox %s after %d failures (%s: %s); kept as dead, "
                  "`monitor alerts retry ID` queues it again", name, settings.private_url(), list(claimed.ids),
                  claimed.failures + 1, reason.value, error)
        self.update_gauges()
        alert = any(isinstance(v, AlertView) for v in views)
        if starts and alert and self.ops_channel and self.ops_channel in self.channels:
            text = (f"monitor: channel {name} has started giving up on messages: outbox {claimed.ids[0]} is dead "
                    f"({reason.value}: {error}). `monitor alerts` lists dead messages; "
                    f"`monitor alerts retry ID` queues one again.")
            try:
                self.enqueue_notice(self.ops_channel, text)
            except (StateError, DeliveryError) as exc:
                log.warning("could not queue the ops notice: %s", redact(str(exc)))


async def send_test_message(name: str, settings: ChannelSettings, *, console: TextIO = sys.stdout) -> SendResult:
    """Send one test message now (``monitor notify-test``); raises ``DeliveryError`` (redacted) if not delivered."""
    text = "رسالة اختبار من مراقب الأخبار العربية: القناة " + name + " تعمل."
    sender = build_sender(name, settings, console=console)
    try:
        if sender.style is MessageStyle.TELEGRAM:
            message = OutgoingMessage(text=text, html=f"<b>{escape(text)}</b>")
        else:
            message = OutgoingMessage(text=text, html=f'<p dir="rtl" lang="ar">{escape(text)}</p>',
                                      subject="اختبار مراقب الأخبار")
        result = await sender.send(message)
    finally:
        await sender.aclose()
    if not result.delivered:
        reason = result.reason or FailureReason.UNKNOWN
        raise DeliveryError(name, f"not delivered ({reason.value}): {redact(result.detail)}",
                            retryable=reason not in MESSAGE_FAULTS, retry_after=result.retry_after)
    return result
