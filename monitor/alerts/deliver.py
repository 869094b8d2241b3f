"""Deliver stage: drain the outbox through Apprise, crash-safely, one worker per channel.

Why this shape:

* **Claim, send, mark.** A row is committed as 'sending' before the send and
  'sent' after it (``monitor.state.outbox``). After a kill -9 the rows found
  'sending' are re-queued as *possible repeats*: at most the in-flight
  message is sent twice, and it says so. Nothing is lost.
* **One asyncio task per channel**, each with its own rate limiter and
  backoff, so an SMTP outage never delays Telegram. Within a channel the head
  of the line blocks while it backs off: alerts arrive in order per chat.
* **The daemon owns retries.** Apprise is used with its own retries off; its
  ``notify()`` only says True/False. To learn *why* (HTTP status, Telegram's
  ``retry_after``, SMTP reply code) a logging filter on the ``apprise`` logger
  collects, per sending thread, the plugin's own log lines - including the
  DEBUG "Response Details" line that carries Telegram's JSON answer - while
  the REAL plugin code runs unchanged. The filter forwards only INFO and
  above to the rest of logging: apprise's DEBUG lines contain the bot token.
* **console://** is handled here, not registered with Apprise's notify
  decorator: the decorator registers a process-global scheme whose handler
  could not reach this Deliverer's ``console`` stream (tests and the demo
  pass their own), and it would gain nothing from Apprise.
* SQLite is used only from the event-loop thread and never across an
  ``await``; sends run in worker threads (``asyncio.to_thread``).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import apprise
from markupsafe import escape

from monitor import metrics
from monitor.alerts.render import Renderer, clean_subject, split_telegram_html
from monitor.alerts.settings import ChannelSettings
from monitor.errors import DeliveryError
from monitor.state import outbox as state_outbox
from monitor.state.db import Database

__all__ = ["Deliverer", "DeliveryProgress", "DeliveryReport", "send_test_message"]

log = logging.getLogger(__name__)

@dataclass
class DeliveryReport:
    """What a drain did: alert rows sent, failed attempts (will retry), rows gone dead, rows still waiting.

    ``messages`` counts what the channels received: one message carries every
    rule that fired on a story (several rows), so it is usually below ``sent``.
    """

    sent: int = 0
    failed: int = 0
    dead: int = 0
    pending: int = 0
    messages: int = 0


@dataclass(frozen=True)
class DeliveryProgress:
    """What the daemon's health and watchdog read: ``attempts`` grows with every send that
    ended (sent, failed or given up); ``stopped`` names channels whose loop ended with an error."""

    attempts: int
    stopped: tuple[str, ...] = ()


# -- learning why Apprise failed ------------------------------------------------

class _AppriseLogTap(logging.Filter):
    """Per-thread capture of the apprise logger's lines; forwards INFO+ only."""

    def __init__(self) -> None:
        super().__init__()
        self._local = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        lines = getattr(self._local, "lines", None)
        if lines is not None:
            try:
                lines.append(record.getMessage())
            except Exception:  # noqa: BLE001 - a bad log call must not break a send
                pass
        return record.levelno >= logging.INFO

    @contextmanager
    def capture(self) -> Iterator[list[str]]:
        self._local.lines = []
        try:
            yield self._local.lines
        finally:
            self._local.lines = None


_TAP = _AppriseLogTap()
_TAP_LOCK = threading.Lock()


def _install_tap() -> None:
    with _TAP_LOCK:
        logger = logging.getLogger("apprise")
        if _TAP not in logger.filters:
            logger.addFilter(_TAP)
        if logger.level == logging.NOTSET or logger.level > logging.DEBUG:
            logger.setLevel(logging.DEBUG)  # records must exist to be read; the tap drops DEBUG


_HTTP_STATUS = re.compile(r"error=(\d{3})\b")
_RETRY_AFTER = re.compile(r"retry_after\\?['\"]?\s*:\s*(\d+(?:\.\d+)?)")
_SMTP_CODE = re.compile(r"\((\d{3}), b?['\"]|refused: (\d{3})\b|^(\d{3}) ")


def classify(channel: str, lines: list[str], timeout_hint: bool = False) -> DeliveryError:
    """Turn apprise's log lines for one failed send into a ``DeliveryError``."""
    text = "\n".join(lines)
    status = next((int(m.group(1)) for m in _HTTP_STATUS.finditer(text)), None)
    retry_after = next((float(m.group(1)) for m in _RETRY_AFTER.finditer(text)), None)
    smtp = None
    for line in lines:
        m = _SMTP_CODE.search(line)
        if m:
            smtp = int(next(g for g in m.groups() if g))
    shown = [ln for ln in lines if not ln.startswith(("Response Details", "Telegram POST URL", "Telegram Payload"))]
    failing = [ln for ln in shown if "fail" in ln.lower() or "refused" in ln.lower() or "error" in ln.lower()]
    message = ((failing or shown or ["notification failed"])[-1]).strip()[:300]
    if status is not None:
        retryable = status == 429 or status == 408 or status >= 500
        return DeliveryError(channel, f"HTTP {status}: {message}", retryable=retryable,
                             retry_after=retry_after if status == 429 else None)
    if smtp is not None:
        return DeliveryError(channel, f"SMTP {smtp}: {message}", retryable=smtp < 500)
    return DeliveryError(channel, message, retryable=True)


# -- the email's text part ------------------------------------------------------
#
# Apprise's email plugin has no way to pass a text/plain alternative: for an
# HTML body it always builds the text part with its own HTML-to-text
# conversion (``convert_between(HTML, TEXT, body)`` inside
# ``NotifyEmail.prepare_emails``), which drops the sources' links and the
# layout of ``email.txt.j2``. The hook below replaces that one call, only in
# the thread that is sending an email of ours and only for the exact HTML
# body we passed; every other conversion (other plugins, other threads, other
# bodies) goes to Apprise's function unchanged. If a future Apprise no longer
# has that name, the hook is not installed and Apprise's own text part is
# used (``test_deliver_email`` then fails loudly on the text part).

_EMAIL_TEXT = threading.local()


def _install_email_text_hook() -> bool:
    try:
        from apprise.plugins.email import base as email_base
    except ImportError:  # pragma: no cover - layout of another Apprise version
        return False
    with _TAP_LOCK:
        original = getattr(email_base, "convert_between", None)
        if original is None:  # pragma: no cover
            return False
        if getattr(original, "_monitor_text_part", False):
            return True

        def convert_between(from_format, to_format, content, *args, **kwargs):  # type: ignore[no-untyped-def]
            pair = getattr(_EMAIL_TEXT, "pair", None)
            if (pair is not None and from_format == apprise.NotifyFormat.HTML
                    and to_format == apprise.NotifyFormat.TEXT and content == pair[0]):
                return pair[1]
            return original(from_format, to_format, content, *args, **kwargs)

        convert_between._monitor_text_part = True  # type: ignore[attr-defined]
        email_base.convert_between = convert_between
    return True


def _apprise_send(channel: str, url: str, *, title: str, body: str, body_format: str,
                  text: str | None = None) -> None:
    """One blocking send through the real Apprise plugin (runs in a worker thread).

    ``text``: for an HTML email, the text/plain part to send instead of
    Apprise's conversion of ``body`` (see ``_install_email_text_hook``).
    """
    _install_tap()
    if text is not None:
        _install_email_text_hook()
    with _TAP.capture() as lines:
        plugin = apprise.Apprise.instantiate(url)
        if plugin is None:
            raise DeliveryError(channel, "Apprise cannot load this URL", retryable=False)
        _EMAIL_TEXT.pair = (body, text) if text is not None else None
        try:
            ok = bool(plugin.notify(body=body, title=title, body_format=body_format))
        except Exception as exc:
            raise DeliveryError(channel, f"{type(exc).__name__} in Apprise: {exc}", retryable=True) from exc
        finally:
            _EMAIL_TEXT.pair = None
    if not ok:
        raise classify(channel, lines)


# -- the worker -----------------------------------------------------------------

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

    def record(self) -> None:
        self.sent.append(self.clock())
        keep = max(self.per_minute or 1, 1)
        while len(self.sent) > keep:
            self.sent.popleft()


def backoff(attempts: int, settings: ChannelSettings, retry_after: float | None, rng: random.Random) -> float:
    """Exponential backoff with full jitter in its upper half; a server's retry_after is a floor."""
    base = min(settings.backoff_max, settings.backoff_initial * (2 ** max(0, attempts - 1)))
    delay = base / 2 + rng.random() * base / 2
    if retry_after is not None:
        delay = max(delay, min(retry_after, 3600.0))
    return delay


class Deliverer:
    """Sends due outbox rows on every channel; see the module docstring."""

    def __init__(self, db: Database, channels: dict[str, ChannelSettings], *,
                 templates_dir: Path | None = None, console: TextIO = sys.stdout,
                 clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.channels = dict(channels)
        self.console = console
        self.clock = clock
        self._templates_dir = templates_dir
        self.renderers = {n: Renderer(templates_dir, tz=c.timezone) for n, c in self.channels.items()}
        self.limiters = {n: _RateLimiter(*c.limits(), clock) for n, c in self.channels.items()}
        self._wake: dict[str, asyncio.Event] = {}
        self._recovered = False
        self._run_stop: asyncio.Event | None = None
        self._tasks: dict[str, asyncio.Task] = {}
        self._rng = random.Random()
        self.report = DeliveryReport()

    def update_channels(self, channels: dict[str, ChannelSettings]) -> None:
        """After a config reload: new settings apply to the next message.

        A channel added by the reload gets its delivery task at once (when
        ``run`` is going); a removed channel's task finishes a send in flight,
        records it, and stops: its undelivered rows stay pending (``monitor
        alerts`` shows them) until the channel comes back. A channel whose
        limits did not change keeps its rate limiter (no burst after a reload).
        """
        old = self.channels
        self.channels = dict(channels)
        for n, c in self.channels.items():
            self.renderers[n] = Renderer(self._templates_dir, tz=c.timezone)
            if n not in old or old[n].limits() != c.limits() or n not in self.limiters:
                self.limiters[n] = _RateLimiter(*c.limits(), self.clock)
        for n in set(old) - set(self.channels):
            log.info("channel %s removed by reload: its delivery stops; undelivered rows stay queued", n)
        if self._run_stop is not None:
            for n in self.channels:
                self._spawn(n)
        self.wake()

    def _spawn(self, name: str) -> None:
        """Start ``name``'s delivery loop under ``run`` unless one is alive."""
        task = self._tasks.get(name)
        if task is not None and not task.done():
            return  # a loop still alive (maybe finishing a send) picks up the new settings itself
        task = asyncio.create_task(self._channel_loop(name, stop=self._run_stop), name=f"deliver:{name}")
        task.add_done_callback(self._task_done)
        self._tasks[name] = task

    @staticmethod
    def _task_done(task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("delivery task %s failed", task.get_name(), exc_info=task.exception())

    def progress(self) -> DeliveryProgress:
        """How far delivery got; see ``DeliveryProgress``."""
        stopped = tuple(sorted(name for name, task in self._tasks.items()
                               if task.done() and not task.cancelled() and task.exception() is not None))
        return DeliveryProgress(self.report.sent + self.report.failed + self.report.dead, stopped)

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
        if not self._recovered:
            n = state_outbox.recover_inflight(self.db)
            if n:
                log.warning("%d message(s) were being sent when the daemon stopped; resending, marked as possible repeats", n)
            self._recovered = True
            self._update_depth()

    def _update_depth(self) -> None:
        metrics.OUTBOX_DEPTH.set(state_outbox.depth(self.db))

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set; an in-flight send is allowed to finish and be recorded.

        One task per channel; ``update_channels`` adds tasks for channels a
        reload adds while this runs.
        """
        self._recover()
        self._run_stop = stop
        self._tasks = {}
        try:
            for n in self.channels:
                self._spawn(n)
            await stop.wait()
            while any(not t.done() for t in self._tasks.values()):
                await asyncio.wait([t for t in self._tasks.values() if not t.done()])
        finally:
            self._run_stop = None
            for t in self._tasks.values():
                t.cancel()

    async def drain(self, timeout: float = 60.0) -> DeliveryReport:
        """Send everything due now (waiting out short backoffs within ``timeout``), then return."""
        self._recover()
        self.report = DeliveryReport()
        deadline = self.clock() + timeout
        tasks = [asyncio.create_task(self._channel_loop(n, deadline=deadline)) for n in self.channels]
        try:
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=timeout + 5)
        except TimeoutError:
            log.warning("delivery drain timed out after %.0fs; the rest stays queued", timeout)
        self.report.pending = state_outbox.depth(self.db)
        self._update_depth()
        return self.report

    async def _sleep(self, name: str, seconds: float, stop: asyncio.Event | None) -> None:
        ev = self._wake.setdefault(name, asyncio.Event())
        waiters = [asyncio.ensure_future(ev.wait())]
        if stop is not None:
            waiters.append(asyncio.ensure_future(stop.wait()))
        try:
            await asyncio.wait(waiters, timeout=max(0.0, seconds), return_when=asyncio.FIRST_COMPLETED)
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
            now = self.clock()
            limiter_wait = self.limiters[name].delay()
            if limiter_wait > 0:
                if deadline is not None and now + limiter_wait > deadline:
                    return
                await asyncio.sleep(limiter_wait)  # rate limit: not interruptible by wake
                continue
            claimed = state_outbox.claim(self.db, name, now, settings.max_group)
            if not isinstance(claimed, state_outbox.Claimed):
                nxt = claimed.until if claimed is not None else state_outbox.next_due(self.db, name)
                if deadline is not None:
                    if nxt is None or nxt > deadline:
                        return
                    await asyncio.sleep(max(0.0, min(nxt - now, deadline - now)))
                    continue
                await self._sleep(name, min(60.0, (nxt - now) if nxt is not None else 60.0), stop)
                continue
            await self._deliver(name, settings, claimed)

    async def _deliver(self, name: str, settings: ChannelSettings, claimed: state_outbox.Claimed) -> None:
        views = state_outbox.load_views(self.db, claimed.ids)
        renderer = self.renderers[name]
        try:
            parts = self._render(settings, renderer, views)
        except Exception as exc:
            log.exception("channel %s: cannot render outbox %s", name, claimed.ids)
            self._failed(name, settings, claimed, DeliveryError(name, f"render failed: {exc}", retryable=False))
            return
        sent_parts = claimed.parts_sent
        try:
            for idx in range(sent_parts, len(parts)):
                if idx > sent_parts:
                    wait = self.limiters[name].delay()
                    if wait:
                        await asyncio.sleep(wait)
                title, body, fmt, *text = parts[idx]
                self.limiters[name].record()
                await self._send(name, settings, title, body, fmt, text[0] if text else None)
                if idx + 1 < len(parts):
                    state_outbox.mark_parts(self.db, claimed.ids, idx + 1)
        except DeliveryError as err:
            self._failed(name, settings, claimed, err)
            return
        now = self.clock()
        state_outbox.mark_sent(self.db, claimed.ids, now)
        self.report.sent += len(claimed.ids)
        self.report.messages += 1
        metrics.ALERTS.labels("sent").inc(len(claimed.ids))
        metrics.DELIVERY_LATENCY.observe(max(0.0, now - claimed.created))
        self._update_depth()

    def _render(self, settings: ChannelSettings, renderer: Renderer,
                views: list[dict]) -> list[tuple[str, str, str] | tuple[str, str, str, str]]:
        if views and all(v.get("kind") == "notice" for v in views):
            text = "\n".join(v["body"] for v in views)
            if settings.is_telegram:
                return [("", p, apprise.NotifyFormat.HTML) for p in split_telegram_html(str(escape(text)))]
            return [(clean_subject("news monitor: " + text.splitlines()[0] if text else "news monitor"), text,
                     apprise.NotifyFormat.TEXT)]
        if settings.scheme == "console":
            return [("", renderer.console(views), "text")]
        if settings.is_telegram:
            return [("", piece, apprise.NotifyFormat.HTML) for piece in renderer.telegram(views)]
        mail = renderer.email(views)
        if settings.is_email:
            return [(mail.subject, mail.html, apprise.NotifyFormat.HTML, mail.text)]
        return [(mail.subject, mail.text, apprise.NotifyFormat.TEXT)]

    async def _send(self, name: str, settings: ChannelSettings, title: str, body: str, fmt: str,
                    text: str | None = None) -> None:
        if settings.scheme == "console":
            self.console.write(body.rstrip("\n") + "\n")
            self.console.flush()
            return
        await asyncio.to_thread(_apprise_send, name, settings.url, title=title, body=body, body_format=fmt,
                                text=text)

    def _failed(self, name: str, settings: ChannelSettings, claimed: state_outbox.Claimed, err: DeliveryError) -> None:
        if not err.retryable and claimed.attempts >= settings.max_attempts:
            state_outbox.mark_dead(self.db, claimed.ids, err.message)
            self.report.dead += len(claimed.ids)
            metrics.ALERTS.labels("dead").inc(len(claimed.ids))
            log.error("channel %s (%s): giving up on outbox %s after %d attempts: %s", name,
                      settings.private_url(), list(claimed.ids), claimed.attempts, err.message)
        else:
            delay = backoff(claimed.attempts, settings, err.retry_after, self._rng)
            state_outbox.mark_retry(self.db, claimed.ids, err.message, self.clock() + delay)
            self.report.failed += 1
            metrics.ALERTS.labels("retry").inc(len(claimed.ids))
            log.warning("channel %s (%s): send failed (%s), retry in %.1fs", name, settings.private_url(),
                        err.message, delay)
        self._update_depth()


async def send_test_message(name: str, settings: ChannelSettings, *, console: TextIO = sys.stdout) -> None:
    """Send one test message now (``monitor notify-test``); raises ``DeliveryError``."""
    text = "رسالة اختبار من مراقب الأخبار العربية: القناة " + name + " تعمل."
    if settings.scheme == "console":
        console.write(text + "\n")
        return
    if settings.is_telegram:
        from markupsafe import escape
        await asyncio.to_thread(_apprise_send, name, settings.url, title="", body=f"<b>{escape(text)}</b>",
                                body_format=apprise.NotifyFormat.HTML)
        return
    await asyncio.to_thread(_apprise_send, name, settings.url, title="اختبار مراقب الأخبار", body=text,
                            body_format=apprise.NotifyFormat.TEXT)
