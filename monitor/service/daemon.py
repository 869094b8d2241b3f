"""The long-running service: schedule polls, deliver alerts, reload, stop cleanly.

``Daemon`` wires the stages together once and owns their lifetimes:
the state connection, the shared HTTP client, the story index, the delivery
worker, the APScheduler jobs (one per feed, each rescheduling itself after
its poll finishes, so one feed's polls never overlap), the systemd
notifications, the optional HTTP endpoint and the rules-file watcher.

Reload (SIGHUP or a changed rules/config file) builds the new config and
rules completely before swapping them in; if anything is invalid the old
ones keep running and the error is logged with file:line (and sent once to
the ops channel, if one is configured).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import socket
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from secrets import token_hex
from typing import TextIO

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger

from monitor import __version__, metrics
from monitor.alerts.deliver import Deliverer, DeliveryReport
from monitor.config import Config, check_rules_against_config, load_config
from monitor.errors import ConfigError, ConfigErrors, MonitorError
from monitor.feeds.fetch import Fetcher
from monitor.feeds.schedule import PollPolicy, next_poll_delay
from monitor.feeds.settings import FeedSettings
from monitor.ingest.analysis import AnalysisContext
from monitor.ingest.pipeline import Pipeline, PollOutcome, PollStatus
from monitor.ingest.workers import WorkerPool
from monitor.rules import RuleSet, load_rules
from monitor.service.housekeeping import checkpoint, prune
from monitor.service.http_api import HealthReport, start_http_server
from monitor.service.logs import setup_logging
from monitor.service.sdnotify import Notifier
from monitor.service.watch import FileWatcher
from monitor.state import feeds as state_feeds
from monitor.state import instances as state_instances
from monitor.state import meta as state_meta
from monitor.state import open_state
from monitor.state import outbox as state_outbox
from monitor.state.db import StateError
from monitor.stories.index import StoryIndex

log = logging.getLogger("monitor.service.daemon")

#: Consecutive errors after which a feed makes ``/healthz`` degraded.
FAILING_AFTER = 3
#: Outbox rows waiting beyond which ``/healthz`` reports a backlog.
BACKLOG_AFTER = 100
#: Seconds ``run()`` waits, after SIGTERM, for polls and deliveries in flight.
#: Below the unit's TimeoutStopSec=45; what is left stays safely queued.
STOP_GRACE = 20.0
#: Seconds after a feed's lease or next poll at which an instance that was refused asks again.
LEASE_RETRY_SPREAD = (0.5, 2.0)
#: STATUS= is refreshed every 30 s, and after a poll if the last one is this old.
STATUS_MIN_INTERVAL = 5.0


@dataclass
class CycleSummary:
    """Totals of one ``run --once`` cycle, printed as one line."""

    feeds: int = 0
    failed: int = 0
    not_modified: int = 0
    skipped: int = 0
    items: int = 0
    new_items: int = 0
    alerts_new: int = 0
    alerts_already_sent: int = 0
    delivery: DeliveryReport | None = None

    @classmethod
    def of(cls, outcomes: list[PollOutcome], delivery: DeliveryReport | None) -> CycleSummary:
        return cls(
            feeds=len(outcomes),
            failed=sum(o.status is PollStatus.ERROR for o in outcomes),
            not_modified=sum(o.status is PollStatus.NOT_MODIFIED for o in outcomes),
            skipped=sum(o.status is PollStatus.SKIPPED for o in outcomes),
            items=sum(o.items for o in outcomes),
            new_items=sum(o.new_items for o in outcomes),
            alerts_new=sum(o.alerts_new for o in outcomes),
            alerts_already_sent=sum(o.alerts_already_sent for o in outcomes),
            delivery=delivery,
        )

    def line(self) -> str:
        skipped = f", {self.skipped} being polled by another instance" if self.skipped else ""
        text = (f"{self.feeds} feeds polled ({self.failed} failed, {self.not_modified} not modified{skipped}), "
                f"{self.items} items seen ({self.new_items} new), "
                f"alerts: {self.alerts_new} new / {self.alerts_already_sent} already sent")
        if self.delivery is not None:
            d = self.delivery
            text += (f"; {d.messages} messages delivered ({d.sent} alerts), {d.failed} failed attempts, "
                     f"{d.dead} dead, {d.pending} waiting")
        if self.alerts_new == 0 and self.failed == 0:
            text += " — nothing new"
        return text


def _is_running(pid: int) -> bool:
    """Whether a process with this pid exists on this host (a pid reused since is taken as alive:
    the instance's heartbeat then decides)."""
    if pid == os.getpid():
        return False  # our pid, another instance id: our predecessor, which this process replaced
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def load_everything(config_path: Path) -> tuple[Config, RuleSet]:
    """Config and rules, fully validated and cross-checked (``monitor check`` runs exactly this)."""
    config = load_config(config_path)
    ruleset = load_rules(config.rules)
    errors = check_rules_against_config(config, ruleset)
    if errors:
        raise ConfigErrors(errors)
    return config, ruleset


class Daemon:
    """One configured monitor: ``await Daemon(path).run()`` or ``.run_once()``."""

    def __init__(self, config_path: Path, *, console: TextIO | None = None, journald: bool | None = None) -> None:
        self.config_path = Path(config_path)
        self.console = console or sys.stdout
        self.journald = journald
        self.notifier = Notifier.from_env()
        self.stop_event = asyncio.Event()
        self.started_at = time.time()
        #: This daemon's name in the state's leases and ``monitor status`` (host, pid, a random tail:
        #: a pid reused after a restart is another instance).
        self.instance = f"{socket.gethostname()}:{os.getpid()}:{token_hex(3)}"
        self._poll_slots: asyncio.Semaphore | None = None
        self._tasks: set[asyncio.Task] = set()
        self._poll_tasks: set[asyncio.Task] = set()
        self._last_reload_error: str | None = None
        self._reload_lock: asyncio.Lock | None = None
        self._heartbeat = time.monotonic()  # last run of the scheduler's heartbeat job
        self._heartbeat_every = (self.notifier.watchdog_interval or 10.0)
        self.watcher: FileWatcher | None = None
        self._status_sent = 0.0
        self.http_server = None

    # -- set-up ------------------------------------------------------------

    def setup(self) -> None:
        """Load and validate everything; raises ``ConfigError`` before anything starts."""
        self.config, self.ruleset = load_everything(self.config_path)
        setup_logging(self.config.model.log_level, journald=self.journald, secrets=lambda: self.config.secrets)
        self.db = open_state(self.config.state)
        self.stories = StoryIndex(self.config.model.dedup)
        try:
            self.stories.load(self.db, time.time())
        except StateError:
            self.db.close()
            raise
        self.fetcher = Fetcher(self.config.model.fetch)
        self.deliverer = Deliverer(self.db, dict(self.config.channels), templates_dir=self.config.templates_dir,
                                   console=self.console, ops_channel=self.config.model.ops_channel,
                                   instance=self.instance, lease=self.config.model.cluster.lease)
        self.workers = WorkerPool.for_feeds(len(self.config.feeds))
        self.pipeline = self._build_pipeline(self.config, self.ruleset)
        self._poll_slots = asyncio.Semaphore(self.config.model.defaults.concurrency)
        log.info("config %s: %d feeds, %d channels, rules %s (%d rules, %d entities)", self.config.path,
                 len(self.config.feeds), len(self.config.channels), self.ruleset.fingerprint[:12],
                 len(self.ruleset.rule_ids), len(self.ruleset.entity_ids))

    def _build_pipeline(self, config: Config, ruleset: RuleSet) -> Pipeline:
        """A pipeline for this config and rule set over the daemon's shared parts (a reload builds a new one)."""
        context = AnalysisContext(ruleset, self.stories.settings, self.stories.permutations)
        self.workers.use(context)
        return Pipeline(config, self.db, context, self.fetcher, self.stories, self.workers, instance=self.instance,
                        on_alerts=lambda ids: self.deliverer.wake())

    async def close(self) -> None:
        await self.deliverer.aclose()
        await self.fetcher.aclose()
        await asyncio.to_thread(self.workers.close)
        self.db.close()

    # -- one cycle -----------------------------------------------------------

    async def poll_all(self) -> list[PollOutcome]:
        """Poll every feed once, now, at most ``defaults.concurrency`` at a time (feeds another
        live instance is polling are skipped)."""
        return list(await asyncio.gather(*(self._poll(feed, when_due=False) for feed in self.config.feeds)))

    async def _poll(self, feed: FeedSettings, *, when_due: bool = True) -> PollOutcome:
        assert self._poll_slots is not None
        async with self._poll_slots:
            pipeline = self.pipeline  # the one of the config this poll starts under
            return await pipeline.poll(feed, when_due=when_due)

    def _join(self) -> None:
        """Say this instance runs, and take back what instances that died left leased."""
        state_instances.register(self.db, self.instance, host=socket.gethostname(), pid=os.getpid(),
                                 version=__version__, now=time.time())
        self._reap()

    async def run_once(self, *, delivery_timeout: float = 30.0) -> CycleSummary:
        """Poll every feed once, deliver what is due, and return the totals."""
        try:
            self._join()
            outcomes = await self.poll_all()
            self.pipeline.release_leases()
            report = await self.deliverer.drain(timeout=delivery_timeout)
            state_instances.stopped(self.db, self.instance, time.time())  # its channel leases go too
        finally:
            await self.close()
        return CycleSummary.of(outcomes, report)

    # -- the service -------------------------------------------------------------

    async def run(self) -> int:
        """Run until SIGTERM/SIGINT; returns the process exit code."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop, signum)
        loop.add_signal_handler(signal.SIGHUP, lambda: self._spawn(self.reload("SIGHUP")))

        self._reload_lock = asyncio.Lock()
        metrics.UP_SINCE.set(self.started_at)
        state_meta.put(self.db, "daemon_started", str(self.started_at))
        self._join()
        self.scheduler = AsyncIOScheduler(event_loop=loop, timezone=UTC)
        now = datetime.now(UTC)
        for feed in self.config.feeds:
            # Spread the first polls over a few seconds so a restart does not burst.
            self._schedule(feed, now + timedelta(seconds=random.uniform(0, min(5.0, len(self.config.feeds) * 0.05))))
        hk = self.config.model.housekeeping
        self.scheduler.add_job(self._housekeeping, "interval", hours=hk.interval_hours, id="housekeeping",
                               next_run_time=now + timedelta(minutes=1), max_instances=1, coalesce=True,
                               misfire_grace_time=None)
        # The watchdog pings only while this job keeps running: progress of the
        # scheduler itself, not just of the loop (see _watchdog).
        self.scheduler.add_job(self._beat, "interval", seconds=self._heartbeat_every, id="heartbeat",
                               max_instances=1, coalesce=True, misfire_grace_time=None)
        self.scheduler.start()

        if self.config.model.http.enabled:
            try:
                self.http_server = await start_http_server(self.config.model.http, self.health,
                                                           on_metrics=self.refresh_gauges)
            except OSError as exc:  # port taken: the monitor itself still works
                log.error("http: cannot serve /healthz and /metrics on %s:%s: %s", self.config.model.http.host,
                          self.config.model.http.port, exc)
        self._spawn(self.deliverer.run(self.stop_event))
        self.watcher = FileWatcher(self._watched_files(), self._reload_on_change)
        self._spawn(self.watcher.run(self.stop_event))
        if self.notifier.watchdog_interval:
            self._spawn(self._watchdog())

        self.scheduler.add_job(self._instance_heartbeat, "interval", seconds=self.config.model.cluster.heartbeat,
                               id="instance-heartbeat", max_instances=1, coalesce=True, misfire_grace_time=None)
        self.refresh_gauges()
        self.notifier.ready()
        self._spawn(self._status_loop())
        log.info("monitor started: %d feeds", len(self.config.feeds))
        await self.stop_event.wait()

        self.notifier.stopping()
        log.info("stopping: waiting for running polls and deliveries")
        self.scheduler.shutdown(wait=False)
        if self.http_server is not None:
            await self.http_server.close()
        # Polls in flight are cancelled at once: a poll commits in one transaction
        # with no await inside, so a cancelled one is simply replayed after the
        # restart, and a feed that hangs cannot hold up the stop. Deliveries get
        # STOP_GRACE to finish; what is left stays queued in the outbox.
        polls = [t for t in self._poll_tasks if not t.done()]
        for task in polls:
            task.cancel()
        if polls:
            await asyncio.gather(*polls, return_exceptions=True)
            log.info("stopping: %d polls in flight cancelled (replayed at the next start)", len(polls))
        tasks = [t for t in self._tasks if not t.done()]
        if tasks:
            done, pending = await asyncio.wait(tasks, timeout=STOP_GRACE)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            if pending:
                log.warning("stopping: %d tasks still running after %.0f s were cancelled; "
                            "undelivered alerts stay queued for the next start", len(pending), STOP_GRACE)
        try:  # the other instances need not wait for the leases to expire
            self.pipeline.release_leases()
            state_instances.stopped(self.db, self.instance, time.time())
        except StateError as exc:
            log.warning("stopping: could not release this instance's leases: %s", exc)
        await self.close()
        self.notifier.close()
        log.info("monitor stopped")
        return 0

    def request_stop(self, signum: int | None = None) -> None:
        if not self.stop_event.is_set():
            log.info("received %s", signal.Signals(signum).name if signum else "stop request")
            self.stop_event.set()

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed: %r", task.exception(), exc_info=task.exception())

    def _schedule(self, feed: FeedSettings, when: datetime) -> None:
        self.scheduler.add_job(self._poll_job, DateTrigger(run_date=when, timezone=UTC),
                               args=[feed.name], id=f"feed:{feed.name}", replace_existing=True,
                               max_instances=1, misfire_grace_time=None)

    async def _poll_job(self, name: str) -> None:
        feed = next((f for f in self.config.feeds if f.name == name), None)
        if feed is None or self.stop_event.is_set():
            return  # removed by a reload, or stopping
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            self._poll_tasks.add(task)
        try:
            outcome = await self._poll(feed)
        except asyncio.CancelledError:
            # Only run() cancels polls, when stopping; nothing of this poll was committed.
            log.info("feed %s: poll cancelled (stopping)", name)
            return
        except Exception:
            # A bug, not a feed problem: log it and keep the feed scheduled.
            log.exception("feed %s: unexpected error while polling", name)
            outcome = PollOutcome(name, PollStatus.ERROR, error="internal error", error_kind="internal")
        finally:
            if task is not None:
                self._tasks.discard(task)
                self._poll_tasks.discard(task)
        if self.stop_event.is_set():
            return
        if outcome.status is PollStatus.SKIPPED and outcome.retry_at is not None:
            # Not due yet, or another instance is polling it: ask again just after that changes
            # (the instance that polls it will have recorded the next poll by then).
            spread = random.uniform(*LEASE_RETRY_SPREAD)
            self._schedule(feed, datetime.fromtimestamp(max(outcome.retry_at, time.time()) + spread, UTC))
            return
        self.refresh_gauges()
        if time.monotonic() - self._status_sent >= STATUS_MIN_INTERVAL:
            self._send_status()
        delay = self._next_delay(feed, outcome)
        when = datetime.now(UTC) + timedelta(seconds=delay)
        self.pipeline.record_schedule(feed, delay, when.timestamp())
        if any(f.name == name for f in self.config.feeds):
            self._schedule(feed, when)

    def _next_delay(self, feed: FeedSettings, outcome: PollOutcome) -> float:
        defaults = self.config.model.defaults
        record = state_feeds.get(self.db, feed.name)
        interval = self.config.feed_interval(feed)
        policy = PollPolicy(interval=interval, min_interval=min(defaults.min_interval, interval),
                            max_interval=max(defaults.max_interval, interval), max_backoff=defaults.max_interval,
                            jitter=defaults.jitter)
        return next_poll_delay(
            policy,
            consecutive_errors=record.consecutive_errors if record else 0,
            retry_after=outcome.retry_after,
            ttl_seconds=outcome.ttl_seconds,
            max_age=outcome.max_age,
            entries_per_week=outcome.entries_per_week,
            feed_window_seconds=outcome.feed_window_seconds,
        )

    # -- reload ------------------------------------------------------------------

    def _watched_files(self) -> list[Path]:
        """The config (and feed files), the rules paths as configured (a folder: a new
        file in it counts) and every rules file actually loaded."""
        files = list(self.config.sources)
        files += [Path(p) for p in self.config.rules]
        files += [Path(p) for p in self.ruleset.sources]
        return list(dict.fromkeys(files))

    async def _reload_on_change(self) -> None:
        await self.reload("file change")

    async def reload(self, reason: str) -> bool:
        """Swap in a new config and rules if both are valid; otherwise keep the old ones.

        One reload at a time (a SIGHUP during a file-change reload waits). The
        files are read and the rules compiled in a worker thread, so a big rule
        pack does not stall the loop (and the watchdog); only the swap runs here.
        """
        if self._reload_lock is None:
            self._reload_lock = asyncio.Lock()
        async with self._reload_lock:
            self.notifier.reloading()
            try:
                return await self._reload(reason)
            finally:
                if self.watcher is not None:
                    # Follow added/removed rules files; accept the files as they are now,
                    # so a SIGHUP reload is not repeated by the watcher.
                    self.watcher.paths = self._watched_files()
                    self.watcher.rebaseline()
                self.notifier.ready()
                self._send_status()

    async def _reload(self, reason: str) -> bool:
        try:
            config, ruleset = await asyncio.to_thread(load_everything, self.config_path)
        except Exception as exc:  # noqa: BLE001 - ConfigError expected; anything else must not kill us either
            message = str(exc) if isinstance(exc, ConfigError) else f"{type(exc).__name__}: {exc}"
            metrics.RELOADS.labels("error").inc()
            log.error("reload (%s) failed, keeping the running rules: %s", reason, message)
            if message != self._last_reload_error:
                self._last_reload_error = message
                self._ops_alert(f"monitor: reload failed, old rules still running:\n{message}")
            return False
        self._last_reload_error = None
        metrics.RELOADS.labels("ok").inc()
        old_model, new_model = self.config.model, config.model
        fixed = [name for name in ("state", "fetch", "http", "dedup", "templates_dir", "housekeeping")
                 if getattr(old_model, name) != getattr(new_model, name)]
        if old_model.defaults.concurrency != new_model.defaults.concurrency:
            fixed.append("defaults.concurrency")
        if fixed:
            log.warning("reload (%s): changes to %s take effect after a restart", reason, ", ".join(fixed))
        old_names = {f.name for f in self.config.feeds}
        self.config = config
        self.ruleset = ruleset
        self.workers.resize(WorkerPool.workers_for(len(config.feeds)))
        self.pipeline = self._build_pipeline(config, ruleset)
        self.deliverer.update_channels(dict(config.channels), config.model.ops_channel)
        setup_logging(config.model.log_level, journald=self.journald, secrets=lambda: self.config.secrets)
        now = datetime.now(UTC)
        for feed in config.feeds:
            if feed.name not in old_names:
                self._schedule(feed, now)
        for name in old_names - {f.name for f in config.feeds}:
            try:
                self.scheduler.remove_job(f"feed:{name}")
            except JobLookupError:  # running right now: _poll_job checks the config and stops there
                pass
        log.info("reloaded (%s): %d feeds, rules %s (%d rules)", reason, len(config.feeds),
                 ruleset.fingerprint[:12], len(ruleset.rule_ids))
        return True

    def _ops_alert(self, text: str) -> None:
        channel = self.config.model.ops_channel
        if not channel:
            return
        try:
            self.deliverer.enqueue_notice(channel, text)
        except MonitorError as exc:
            log.warning("could not queue the ops alert: %s", exc)

    # -- health ------------------------------------------------------------------

    async def _beat(self) -> None:
        """Scheduler job: proves that the scheduler runs jobs on this loop."""
        self._heartbeat = time.monotonic()

    async def _instance_heartbeat(self) -> None:
        """Scheduler job: tells the other instances (and ``monitor status``) this one is alive."""
        try:
            state_instances.heartbeat(self.db, self.instance, time.time())
            self._reap()
        except StateError as exc:
            log.warning("instance heartbeat: %s", exc)

    def _reap(self) -> None:
        """Free the leases of instances that died (see ``state.instances.reap``)."""
        dead = state_instances.reap(self.db, me=self.instance, host=socket.gethostname(), now=time.time(),
                                    stale_after=4 * self.config.model.cluster.heartbeat, is_running=_is_running)
        if dead:
            log.warning("instances gone without stopping: %s; their feeds and channels are taken over",
                        ", ".join(dead))

    def scheduler_stalled(self) -> float | None:
        """Seconds since the heartbeat job last ran, if that is far too long; else None."""
        late = time.monotonic() - self._heartbeat
        return late if late > max(3 * self._heartbeat_every, 5.0) else None

    async def _watchdog(self) -> None:
        """Ping systemd's watchdog every WATCHDOG_USEC/2 while the loop and the scheduler make progress.

        This coroutine runs on the loop, so a blocked loop stops the pings; it
        also stops pinging when the scheduler's heartbeat job stops running
        (scheduler dead or wedged), and systemd then restarts the service.
        """
        interval = self.notifier.watchdog_interval or 10.0
        warned = False
        while not self.stop_event.is_set():
            stalled = self.scheduler_stalled()
            if self.scheduler.running and stalled is None:
                self.notifier.watchdog()
                warned = False
            elif not warned:
                warned = True
                log.error("watchdog: scheduler made no progress for %.0f s; not pinging systemd", stalled or 0)
            try:
                await asyncio.wait_for(self.stop_event.wait(), timeout=interval)
            except TimeoutError:
                pass

    async def _status_loop(self) -> None:
        while not self.stop_event.is_set():
            self._send_status()
            try:
                await asyncio.wait_for(self.stop_event.wait(), timeout=30.0)
            except TimeoutError:
                pass

    def _send_status(self) -> None:
        if not self.notifier.enabled:
            return
        self._status_sent = time.monotonic()
        try:
            self.notifier.status(self.status_line())
        except StateError as exc:
            log.warning("status: %s", exc)

    def refresh_gauges(self) -> None:
        """Set the gauges read from the state (before /metrics is served, after each poll)."""
        try:
            failing = len(self._failing_feeds(1))
            depth = state_outbox.depth(self.db)
        except StateError as exc:
            log.warning("metrics: cannot read the state: %s", exc)
            return
        metrics.FEEDS_FAILING.set(failing)
        metrics.OUTBOX_DEPTH.set(depth)
        metrics.WAL_BYTES.set(self.db.wal_bytes())

    def _failing_feeds(self, threshold: int) -> list[str]:
        """Configured feeds with at least ``threshold`` errors in a row (a feed removed
        from the config keeps its row in the state, but is no longer our problem)."""
        configured = {f.name for f in self.config.feeds}
        return [name for name in state_feeds.failing(self.db, threshold) if name in configured]

    def status_line(self) -> str:
        """The STATUS= line ``systemctl status`` shows: feeds, last poll, alerts sent today."""
        failing = len(self._failing_feeds(1))
        last = state_feeds.last_poll(self.db)
        sent = state_outbox.sent_since(self.db, time.time() - 86400)
        last_text = datetime.fromtimestamp(last, UTC).strftime("%H:%M:%S") if last else "never"
        return (f"{len(self.config.feeds)} feeds ({failing} failing), last poll {last_text} UTC, "
                f"{sent} alerts sent in 24h")

    def health(self) -> HealthReport:
        """``/healthz``: degraded when feeds keep failing, the outbox backs up,
        the scheduler stalls, or the last reload failed."""
        reasons = []
        failing = self._failing_feeds(FAILING_AFTER)
        if failing:
            reasons.append(f"{len(failing)} feeds failing ({FAILING_AFTER}+ errors in a row): "
                           f"{', '.join(failing[:10])}")
        counts = state_outbox.counts(self.db)
        depth = counts.get("pending", 0) + counts.get("sending", 0)
        metrics.OUTBOX_DEPTH.set(depth)
        if depth > BACKLOG_AFTER:
            reasons.append(f"outbox backlog: {depth} messages waiting")
        stalled = self.scheduler_stalled()
        if stalled is not None:
            reasons.append(f"watchdog: scheduler stalled {stalled:.0f} s")
        if self._last_reload_error:
            reasons.append("last reload failed: " + self._last_reload_error.splitlines()[0])
        reasons += self.deliverer.problems()
        return HealthReport(status="degraded" if reasons else "ok", reasons=reasons,
                            details={"feeds": len(self.config.feeds), "failing_feeds": len(failing),
                                     "outbox_depth": depth, "dead": counts.get("dead", 0),
                                     "uptime_seconds": round(time.time() - self.started_at)})

    async def _housekeeping(self) -> None:
        try:
            report = prune(self.db, self.config.model.housekeeping, time.time())
            wal = checkpoint(self.db)  # also sets WAL_BYTES
            log.info("housekeeping: pruned %d rows, WAL %d bytes", report.total, wal)
        except StateError as exc:
            log.warning("housekeeping failed: %s", exc)
