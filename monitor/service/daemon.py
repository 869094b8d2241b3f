"""The long-running service: schedule polls, deliver alerts, reload, stop cleanly.

``Daemon`` wires the stages together once and owns their lifetimes: the
state's lock and connection, the shared HTTP client, the story index, the
delivery task, the APScheduler jobs (one per feed, each rescheduling itself
after its poll finishes, so one feed's polls never overlap), the systemd
notifications, the optional HTTP endpoint and the rules-file watcher.

It fails loudly and recovers by itself:

* one daemon per state file (``StateLock``), refused before anything is read
  or re-queued;
* a feed's next poll is scheduled whatever its poll did (a state database
  error, a bug): the schedule is never lost, and a check every
  ``CHECK_EVERY`` seconds puts back any feed that has no job;
* the long-lived tasks (delivery, housekeeping, the watcher, that check) run
  under a ``Supervisor`` that logs, backs off and restarts them;
* ``/healthz``, the watchdog and ``monitor status`` follow *progress*
  (``monitor.service.progress``): polls recorded, deliveries made, no task
  crash-looping, so a daemon that is alive but stuck is restarted by systemd.

Several instances may share one PostgreSQL state: each is named
(``Daemon.instance``), registers itself and beats a heartbeat; each feed's
poll and each channel's delivery is leased to one of them at a time
(``monitor.state.feeds``, ``monitor.state.instances``), and the leases of
an instance that died are taken back (at once on its own host, after four
missed heartbeats elsewhere).

Reload (SIGHUP or a changed rules/config file) builds the new config and
rules completely before swapping them in; if anything is invalid the old
ones keep running and the error is logged with file:line (and sent once to
the ops channel, if one is configured). A reload that would remove rules is
held back until the files are stable (``monitor.service.reload_guard``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import signal
import socket
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from secrets import token_hex
from typing import Any, TextIO

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger

from monitor import __version__, metrics
from monitor.alerts.deliver import Deliverer, DeliveryReport
from monitor.config import Config, check_rules_against_config, load_config
from monitor.errors import ConfigError, ConfigErrors, MonitorError
from monitor.feeds.fetch import Fetcher
from monitor.feeds.schedule import next_poll_delay
from monitor.feeds.settings import FeedSettings
from monitor.ingest.analysis import AnalysisContext
from monitor.ingest.pipeline import Pipeline, PollOutcome, PollStatus
from monitor.ingest.workers import WorkerPool
from monitor.rules import RuleSet, load_rules_and_documents
from monitor.secrets import redact
from monitor.service.checks import unmatchable_aliases
from monitor.service.housekeeping import checkpoint, prune
from monitor.service.http_api import HealthReport, HttpServer, start_http_server
from monitor.service.logs import setup_logging
from monitor.service.progress import HEALTH_EVERY, HEALTH_KEY, Progress, Reason
from monitor.service.reload_guard import ReloadGuard, RulesShape, Verdict
from monitor.service.sdnotify import Notifier
from monitor.service.supervise import Supervisor
from monitor.service.watch import FileWatcher
from monitor.state import feeds as state_feeds
from monitor.state import instances as state_instances
from monitor.state import meta as state_meta
from monitor.state import open_state
from monitor.state import outbox as state_outbox
from monitor.state.db import StateError, StateLock
from monitor.stories.index import StoryIndex

log = logging.getLogger("monitor.service.daemon")

#: Consecutive errors after which a feed makes ``/healthz`` degraded.
FAILING_AFTER = 3
#: Outbox rows waiting beyond which ``/healthz`` reports a backlog.
BACKLOG_AFTER = 100
#: Seconds ``run()`` waits, after SIGTERM, for polls and deliveries in flight.
#: Below the unit's TimeoutStopSec=45; what is left stays safely queued.
STOP_GRACE = 20.0
#: STATUS= and the health note in the state are refreshed this often (and STATUS= after a
#: poll if the last refresh is STATUS_MIN_INTERVAL old).
STATUS_EVERY = HEALTH_EVERY
STATUS_MIN_INTERVAL = 5.0
#: How often progress is judged, missing feed jobs put back and stopped delivery loops restarted.
CHECK_EVERY = 5.0
#: A supervised task that died this many times in a row makes the daemon stuck.
CRASH_LOOP = 5
#: First retry of a poll whose result the state could not take; doubles up to the feed's interval.
STATE_RETRY = 5.0
#: Housekeeping's first run after the start, and its first retry after a failure.
HOUSEKEEPING_FIRST = 60.0
#: Seconds after a feed's lease or next poll at which an instance that was refused asks again.
LEASE_RETRY_SPREAD = (0.5, 2.0)


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
    ruleset, documents = load_rules_and_documents(config.rules)
    errors = check_rules_against_config(config, ruleset) + unmatchable_aliases(ruleset, documents)
    if errors:
        raise ConfigErrors(errors)
    return config, ruleset


def _shape(ruleset: RuleSet) -> RulesShape:
    return RulesShape.of(ruleset.rule_ids, ruleset.entity_ids, ruleset.keyword_ids, ruleset.sources,
                         ruleset.fingerprint)


def _load_with_shape(config_path: Path) -> tuple[Config, RuleSet, RulesShape]:
    config, ruleset = load_everything(config_path)
    return config, ruleset, _shape(ruleset)


class Daemon:
    """One configured monitor: ``await Daemon(path).run()`` or ``.run_once()``.

    ``clock`` (monotonic seconds) is what progress, health, the supervisor and
    the reload guard measure time with; tests pass their own.
    """

    def __init__(self, config_path: Path, *, console: TextIO | None = None, journald: bool | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config_path = Path(config_path)
        self.console = console or sys.stdout
        self.journald = journald
        self.clock = clock
        self.notifier = Notifier.from_env()
        self.stop_event = asyncio.Event()
        self.started_at = time.time()
        #: This daemon's name in the state's leases and ``monitor status`` (host, pid, a random tail:
        #: a pid reused after a restart is another instance).
        self.instance = f"{socket.gethostname()}:{os.getpid()}:{token_hex(3)}"
        self.lock: StateLock | None = None
        self.supervisor = Supervisor(self.stop_event, clock=clock)
        self.guard = ReloadGuard(clock=clock)
        self.http_server: HttpServer | None = None
        self.watcher: FileWatcher | None = None
        self._poll_slots: asyncio.Semaphore | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._poll_tasks: set[asyncio.Task[Any]] = set()
        self._polling: set[str] = set()
        self._jobless: set[str] = set()  # feeds found without a job by the last check
        self._last_reload_error: str | None = None
        self._held_reload: str | None = None
        self._hold_task: asyncio.Task[None] | None = None
        self._reload_lock: asyncio.Lock | None = None
        self._heartbeat_every = (self.notifier.watchdog_interval or 10.0)
        self._heartbeat = clock()  # last run of the scheduler's heartbeat job
        self._assessment: list[Reason] = []
        self._assessed_at: float | None = None
        self._status_sent = 0.0
        self._health_written = 0.0
        self._health_note = ""

    # -- set-up ------------------------------------------------------------

    def setup(self) -> None:
        """Load and validate everything, take the state's lock; raises ``MonitorError`` before anything starts."""
        self.config, self.ruleset = load_everything(self.config_path)
        self._rules_shape = _shape(self.ruleset)
        setup_logging(self.config.model.log_level, journald=self.journald, secrets=lambda: self.config.secrets)
        # First the lock: a second daemon on one SQLite file is refused before it reads or re-queues
        # anything. (Instances on one PostgreSQL state share it through leases instead.)
        if isinstance(self.config.state, Path):
            self.lock = StateLock.acquire(self.config.state)
        try:
            self.db = open_state(self.config.state)
            try:
                self.stories = StoryIndex(self.config.model.dedup)
                self.stories.load(self.db, time.time())
            except StateError:
                self.db.close()
                raise
        except BaseException:
            if self.lock is not None:
                self.lock.release()
            raise
        self.fetcher = Fetcher(self.config.model.fetch)
        self.deliverer = Deliverer(self.db, dict(self.config.channels), templates_dir=self.config.templates_dir,
                                   console=self.console, ops_channel=self.config.model.ops_channel,
                                   instance=self.instance, lease=self.config.model.cluster.lease)
        self.workers = WorkerPool.for_feeds(len(self.config.feeds))
        self.pipeline = self._build_pipeline(self.config, self.ruleset)
        self.progress = Progress(self.config.model.fetch.timeout, clock=self.clock)
        self._poll_slots = asyncio.Semaphore(self.config.model.defaults.concurrency)
        log.info("config %s: %d feeds, %d channels, rules %s (%d rules, %d entities)", self.config.path,
                 len(self.config.feeds), len(self.config.channels), self.ruleset.fingerprint[:12],
                 len(self.ruleset.rule_ids), len(self.ruleset.entity_ids))
        if not self.ruleset.rule_ids:
            log.warning("the rules define no rule at all: nothing will alert")

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
        if self.lock is not None:
            self.lock.release()

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

    def _leave(self) -> None:
        """A clean stop: give up this instance's feed and channel leases at once."""
        try:
            self.pipeline.release_leases()
            state_instances.stopped(self.db, self.instance, time.time())
        except StateError as exc:
            log.warning("stopping: could not release this instance's leases: %s", exc)

    def _reap(self) -> None:
        """Free the leases of instances that died (see ``state.instances.reap``)."""
        dead = state_instances.reap(self.db, me=self.instance, host=socket.gethostname(), now=time.time(),
                                    stale_after=4 * self.config.model.cluster.heartbeat, is_running=_is_running)
        if dead:
            log.warning("instances gone without stopping: %s; their feeds and channels are taken over",
                        ", ".join(dead))

    async def run_once(self, *, delivery_timeout: float = 30.0) -> CycleSummary:
        """Poll every feed once, deliver what is due, and return the totals."""
        try:
            self._join()
            outcomes = await self.poll_all()
            self.pipeline.release_leases()
            report = await self.deliverer.drain(timeout=delivery_timeout)
            self._leave()
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
        self._heartbeat = self.clock()
        metrics.UP_SINCE.set(self.started_at)
        try:
            state_meta.put(self.db, "daemon_started", str(self.started_at))
            self._join()  # before the first poll and delivery: what a crashed predecessor leased is ours again
        except StateError as exc:
            log.error("state: cannot record the start: %s", exc)
        self.scheduler = AsyncIOScheduler(event_loop=loop, timezone=UTC)
        for feed in self.config.feeds:
            # Spread the first polls over a few seconds so a restart does not burst.
            self._schedule(feed, random.uniform(0, min(5.0, len(self.config.feeds) * 0.05)))
        # The watchdog pings only while this job keeps running: progress of the
        # scheduler itself, not just of the loop (see _watchdog).
        self.scheduler.add_job(self._beat, "interval", seconds=self._heartbeat_every, id="heartbeat",
                               max_instances=1, coalesce=True, misfire_grace_time=None)
        self.scheduler.add_job(self._instance_heartbeat, "interval", seconds=self.config.model.cluster.heartbeat,
                               id="instance-heartbeat", max_instances=1, coalesce=True, misfire_grace_time=None)
        self.scheduler.start()

        if self.config.model.http.enabled:
            try:
                self.http_server = await start_http_server(self.config.model.http, self.health,
                                                           on_metrics=self.refresh_gauges)
            except OSError as exc:  # port taken: the monitor itself still works
                log.error("http: cannot serve /healthz and /metrics on %s:%s: %s", self.config.model.http.host,
                          self.config.model.http.port, exc)
        self.watcher = FileWatcher(self._watched_files(), self._reload_on_change)
        watcher = self.watcher
        self.supervisor.start("delivery", lambda: self.deliverer.run(self.stop_event))
        self.supervisor.start("housekeeping", self._housekeeping_loop)
        self.supervisor.start("watcher", lambda: watcher.run(self.stop_event))
        self.supervisor.start("check", self._check_loop)
        if self.notifier.watchdog_interval:
            self._spawn(self._watchdog())

        self.refresh_gauges()
        self.notifier.ready()
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
        tasks = [t for t in [*self._tasks, *self.supervisor.runners] if not t.done()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=STOP_GRACE)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            if pending:
                log.warning("stopping: %d tasks still running after %.0f s were cancelled; "
                            "undelivered alerts stay queued for the next start", len(pending), STOP_GRACE)
        self._leave()
        await self.close()
        self.notifier.close()
        log.info("monitor stopped")
        return 0

    def request_stop(self, signum: int | None = None) -> None:
        if not self.stop_event.is_set():
            log.info("received %s", signal.Signals(signum).name if signum else "stop request")
            self.stop_event.set()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed: %r", task.exception(), exc_info=task.exception())

    # -- polling ---------------------------------------------------------------------

    def _feed(self, name: str) -> FeedSettings | None:
        return next((f for f in self.config.feeds if f.name == name), None)

    def _schedule(self, feed: FeedSettings, delay: float) -> None:
        when = datetime.now(UTC) + timedelta(seconds=delay)
        self.scheduler.add_job(self._poll_job, DateTrigger(run_date=when, timezone=UTC),
                               args=[feed.name], id=f"feed:{feed.name}", replace_existing=True,
                               max_instances=1, misfire_grace_time=None)
        self.progress.expect(feed.name, self.config.feed_interval(feed), delay)

    async def _poll_job(self, name: str) -> None:
        feed = self._feed(name)
        if feed is None or self.stop_event.is_set():
            return  # removed by a reload, or stopping
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            self._poll_tasks.add(task)
        self._polling.add(name)
        try:
            outcome = await self._poll(feed)
        except asyncio.CancelledError:
            # Only run() cancels polls, when stopping; nothing of this poll was committed.
            log.info("feed %s: poll cancelled (stopping)", name)
            return
        except Exception:  # a bug, not a feed problem: log it and keep the feed scheduled
            log.exception("feed %s: unexpected error while polling", name)
            outcome = PollOutcome(name, PollStatus.ERROR, error="internal error", error_kind="internal")
        finally:
            self._polling.discard(name)
            if task is not None:
                self._tasks.discard(task)
                self._poll_tasks.discard(task)
        if not self.stop_event.is_set():
            self._after_poll(name, outcome)

    def _after_poll(self, name: str, outcome: PollOutcome) -> None:
        """Schedule the feed's next poll first (whatever else fails), then record it and refresh status."""
        feed = self._feed(name)  # the current config's (a reload may have changed it)
        if outcome.status is PollStatus.SKIPPED and outcome.retry_at is not None:
            # Not due yet, or another instance is polling it: ask again just after that changes
            # (the instance that polls it will have recorded the next poll by then).
            if feed is not None:
                self._schedule(feed, max(0.0, outcome.retry_at - time.time()) + random.uniform(*LEASE_RETRY_SPREAD))
            return
        recorded = outcome.error_kind not in ("state", "internal")
        self.progress.polled(name, recorded=recorded, problem=None if recorded else outcome.error)
        if feed is None:
            return
        delay = self._next_delay(feed, outcome)
        self._schedule(feed, delay)
        try:
            self.pipeline.record_schedule(feed, delay, time.time() + delay)
        except StateError as exc:
            log.warning("feed %s: next poll in %.0f s (not recorded in the state: %s)", name, delay, exc)
        self.refresh_gauges()
        if time.monotonic() - self._status_sent >= STATUS_MIN_INTERVAL:
            self._send_status()

    def _next_delay(self, feed: FeedSettings, outcome: PollOutcome) -> float:
        """The feed's adaptive delay; a poll the state did not take is retried soon (5 s,
        doubling, at most the feed's interval), since nothing of it was recorded."""
        policy = self.config.poll_policy(feed)
        if outcome.error_kind in ("state", "internal"):
            streak = self.progress.feeds[feed.name].unrecorded if feed.name in self.progress.feeds else 1
            return min(policy.interval, STATE_RETRY * 2.0 ** max(0, streak - 1))
        try:
            record = state_feeds.get(self.db, feed.name)
            errors = record.consecutive_errors if record else 0
        except StateError:
            errors = 1 if outcome.status is PollStatus.ERROR else 0
        return next_poll_delay(
            policy,
            consecutive_errors=errors,
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
            config, ruleset, shape = await asyncio.to_thread(_load_with_shape, self.config_path)
        except Exception as exc:  # noqa: BLE001 - ConfigError expected; anything else must not kill us either
            message = str(exc) if isinstance(exc, ConfigError) else f"{type(exc).__name__}: {exc}"
            self._reload_failed(reason, message)
            return False
        settings = config.model.reload
        decision = self.guard.decide(self._rules_shape, shape, hold=settings.hold,
                                     allow_empty=settings.allow_empty_rules)
        if decision.verdict is Verdict.REFUSE:
            self._reload_failed(reason, decision.message)
            return False
        if decision.verdict is Verdict.HOLD:
            assert decision.until is not None
            level = logging.WARNING if self._held_reload is None else logging.INFO
            self._held_reload = decision.reduction.describe()
            log.log(level, "reload (%s) held back: it would remove %s; %s", reason, self._held_reload,
                    decision.message)
            self._recheck_at(decision.until)
            return False
        if decision.reduction:
            log.warning("reload (%s): removing %s (%s)", reason, decision.reduction.describe(), decision.message)
        self._held_reload = None
        self._cancel_recheck()
        self._last_reload_error = None
        metrics.RELOADS.labels("ok").inc()
        self._swap(reason, config, ruleset, shape)
        return True

    def _reload_failed(self, reason: str, message: str) -> None:
        metrics.RELOADS.labels("error").inc()
        log.error("reload (%s) failed, keeping the running rules: %s", reason, message)
        if message != self._last_reload_error:
            self._last_reload_error = message
            self._ops_alert(f"monitor: reload failed, old rules still running:\n{message}")

    def _swap(self, reason: str, config: Config, ruleset: RuleSet, shape: RulesShape) -> None:
        old_model, new_model = self.config.model, config.model
        fixed = [name for name in ("state", "state_path", "fetch", "http", "dedup", "templates_dir", "housekeeping",
                                   "cluster")
                 if getattr(old_model, name) != getattr(new_model, name)]
        if old_model.defaults.concurrency != new_model.defaults.concurrency:
            fixed.append("defaults.concurrency")
        if fixed:
            log.warning("reload (%s): changes to %s take effect after a restart", reason, ", ".join(fixed))
        old_names = {f.name for f in self.config.feeds}
        self.config = config
        self.ruleset = ruleset
        self._rules_shape = shape
        self.workers.resize(WorkerPool.workers_for(len(config.feeds)))
        self.pipeline = self._build_pipeline(config, ruleset)
        self.deliverer.update_channels(dict(config.channels), config.model.ops_channel)
        setup_logging(config.model.log_level, journald=self.journald, secrets=lambda: self.config.secrets)
        for feed in config.feeds:
            if feed.name not in old_names:
                self._schedule(feed, 0.0)
        for name in old_names - {f.name for f in config.feeds}:
            try:
                self.scheduler.remove_job(f"feed:{name}")
            except JobLookupError:  # running right now: _poll_job checks the config and stops there
                pass
        self.progress.forget({f.name for f in config.feeds})
        log.info("reloaded (%s): %d feeds, rules %s (%d rules)", reason, len(config.feeds),
                 ruleset.fingerprint[:12], len(ruleset.rule_ids))

    def _recheck_at(self, until: float) -> None:
        """Reload again when a held-back reduction has been stable long enough."""
        self._cancel_recheck()

        async def recheck() -> None:
            if await self._sleep(max(0.0, until - self.clock()) + 0.05):
                return  # stopping
            self._hold_task = None
            await self.reload("held reload, files stable")

        self._hold_task = self._spawn(recheck())

    def _cancel_recheck(self) -> None:
        task, self._hold_task = self._hold_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def _ops_alert(self, text: str) -> None:
        channel = self.config.model.ops_channel
        if not channel:
            return
        try:
            self.deliverer.enqueue_notice(channel, text)
        except MonitorError as exc:
            log.warning("could not queue the ops alert: %s", exc)

    # -- housekeeping ----------------------------------------------------------------

    async def _housekeeping_loop(self) -> None:
        """Prune and checkpoint every ``interval_hours``; a failure retries sooner (1 min, doubling)."""
        wait = HOUSEKEEPING_FIRST
        failures = 0
        while not await self._sleep(wait):
            hk = self.config.model.housekeeping
            try:
                report = prune(self.db, hk, time.time())
                wal = checkpoint(self.db)  # also sets WAL_BYTES
            except StateError as exc:
                failures += 1
                wait = min(hk.interval_hours * 3600, HOUSEKEEPING_FIRST * 2.0 ** (failures - 1))
                log.warning("housekeeping failed (%d in a row), retrying in %.0f s: %s", failures, wait, exc)
                continue
            failures = 0
            wait = hk.interval_hours * 3600
            log.info("housekeeping: pruned %d rows, WAL %d bytes", report.total, wal)

    async def _sleep(self, seconds: float) -> bool:
        """Wait ``seconds`` or until stopping; True when stopping."""
        try:
            await asyncio.wait_for(self.stop_event.wait(), timeout=seconds)
        except TimeoutError:
            return False
        return True

    # -- progress, health, watchdog ------------------------------------------------------

    async def _beat(self) -> None:
        """Scheduler job: proves that the scheduler runs jobs on this loop."""
        self._heartbeat = self.clock()

    async def _instance_heartbeat(self) -> None:
        """Scheduler job: tells the other instances (and ``monitor status``) this one is alive."""
        try:
            state_instances.heartbeat(self.db, self.instance, time.time())
            self._reap()
        except StateError as exc:
            log.warning("instance heartbeat: %s", exc)

    def scheduler_stalled(self) -> float | None:
        """Seconds since the heartbeat job last ran, if that is far too long; else None."""
        late = self.clock() - self._heartbeat
        return late if late > max(3 * self._heartbeat_every, 5.0) else None

    async def _check_loop(self) -> None:
        """Every CHECK_EVERY: judge progress, repair what can be repaired, refresh the status."""
        while True:
            self.check()
            if await self._sleep(CHECK_EVERY):
                return

    def check(self) -> list[Reason]:
        """One round of the check loop; returns (and keeps, for the watchdog) the reasons found."""
        self._restart_stopped_channels()
        self._reschedule_jobless_feeds()
        reasons = self._reasons()
        self._assessment = reasons
        self._assessed_at = self.clock()
        now = time.monotonic()
        if now - self._status_sent >= STATUS_EVERY:
            self._send_status()
        self._write_health(reasons)
        return reasons

    def _restart_stopped_channels(self) -> None:
        stopped = self.deliverer.restart_stopped()
        if stopped:
            log.error("delivery loop of %s ended with an error; started it again", ", ".join(stopped))

    def _reschedule_jobless_feeds(self) -> None:
        """A feed with neither a job nor a poll running has lost its schedule: put it back.

        Seen twice in a row before acting: between a date job's start and the
        poll coroutine's first step the feed has neither for an instant.
        """
        scheduler = getattr(self, "scheduler", None)
        if scheduler is None or not scheduler.running:
            return
        jobless = {f.name for f in self.config.feeds
                   if f.name not in self._polling and scheduler.get_job(f"feed:{f.name}") is None}
        for name in sorted(jobless & self._jobless):
            feed = self._feed(name)
            if feed is not None:
                log.error("feed %s had no scheduled poll; polling it now", name)
                self._schedule(feed, 0.0)
        self._jobless = jobless - self._jobless

    def _reasons(self) -> list[Reason]:
        """Everything wrong right now: progress, tasks, scheduler, feeds failing, backlog, reload."""
        reasons: list[Reason] = []
        try:
            self._sample_delivery()
        except StateError as exc:
            reasons.append(Reason("delivery", f"cannot read the outbox: {exc}"))
            self.progress.delivery(self.deliverer.progress().attempts, due=True)
        reasons += self.progress.reasons()
        for task in self.supervisor.failing():
            stuck = task.crashes >= CRASH_LOOP
            reasons.append(Reason(f"task {task.name}", f"died {task.crashes} times in a row, last: "
                                  f"{task.last_error}", stuck=stuck))
        stopped = self.deliverer.progress().stopped
        if stopped:
            reasons.append(Reason("delivery", f"the loop of {', '.join(stopped)} stopped (restarting)"))
        stalled = self.scheduler_stalled()
        if stalled is not None:
            reasons.append(Reason("scheduler", f"stalled {stalled:.0f} s", stuck=True))
        try:
            failing = self._failing_feeds(FAILING_AFTER)
            depth = state_outbox.depth(self.db)
        except StateError as exc:
            reasons.append(Reason("state", f"cannot read the state: {exc}"))
        else:
            if failing:
                reasons.append(Reason("feeds", f"{len(failing)} feeds failing ({FAILING_AFTER}+ errors in a row): "
                                      f"{', '.join(failing[:10])}"))
            if depth > BACKLOG_AFTER:
                reasons.append(Reason("outbox", f"backlog: {depth} messages waiting"))
        if self._last_reload_error:
            reasons.append(Reason("reload", "last reload failed: " + self._last_reload_error.splitlines()[0]))
        reasons += [Reason("delivery", problem) for problem in self.deliverer.problems()]
        return [Reason(r.part, redact(r.text), r.stuck) for r in reasons]

    def _sample_delivery(self) -> None:
        """Feed the deliverer's attempt count and "is anything due" to ``progress``."""
        now = time.time()
        due = False
        for name in self.config.channels:
            if not self.deliverer.holds(name, now):
                continue  # another instance delivers it: its progress is not ours to judge
            next_at = state_outbox.next_due(self.db, name)
            if next_at is not None and next_at <= now:
                due = True
                break
        self.progress.delivery(self.deliverer.progress().attempts, due=due)

    def stuck(self) -> list[Reason]:
        """What keeps the watchdog from pinging: stuck reasons of the last check, a stalled
        scheduler, or a check that has not run for three rounds."""
        out = [r for r in self._assessment if r.stuck]
        stalled = self.scheduler_stalled()
        if stalled is not None and not any(r.part == "scheduler" for r in out):
            out.append(Reason("scheduler", f"stalled {stalled:.0f} s", stuck=True))
        if self._assessed_at is not None and self.clock() - self._assessed_at > 3 * CHECK_EVERY + 5:
            out.append(Reason("task check", f"no progress check for {self.clock() - self._assessed_at:.0f} s",
                              stuck=True))
        return out

    async def _watchdog(self) -> None:
        """Ping systemd's watchdog every WATCHDOG_USEC/2 while the daemon makes progress.

        This coroutine runs on the loop, so a blocked loop stops the pings; it
        also stops pinging when the scheduler's heartbeat job stops running or
        the progress check finds the daemon stuck, and systemd then restarts
        the service.
        """
        interval = self.notifier.watchdog_interval or 10.0
        warned = False
        while not self.stop_event.is_set():
            stuck = self.stuck() if self.scheduler.running else [Reason("scheduler", "not running", stuck=True)]
            if not stuck:
                self.notifier.watchdog()
                if warned:
                    log.warning("watchdog: progress again; pinging systemd")
                warned = False
            elif not warned:
                warned = True
                log.error("watchdog: no progress, not pinging systemd: %s", "; ".join(map(str, stuck)))
            if await self._sleep(interval):
                return

    def _send_status(self) -> None:
        if not self.notifier.enabled:
            return
        self._status_sent = time.monotonic()
        try:
            self.notifier.status(self.status_line())
        except StateError as exc:
            log.warning("status: %s", exc)

    def _write_health(self, reasons: list[Reason]) -> None:
        """The health note ``monitor status`` prints, in the state (when it can be written):
        at once when it changes, else every STATUS_EVERY (its age tells that the daemon runs)."""
        note = {"status": _status_of(reasons), "reasons": [str(r) for r in reasons],
                "stuck": [str(r) for r in reasons if r.stuck], "pid": os.getpid()}
        same = json.dumps(note, ensure_ascii=False) == self._health_note
        if same and time.monotonic() - self._health_written < STATUS_EVERY:
            return
        try:
            state_meta.put(self.db, HEALTH_KEY, json.dumps({"at": time.time(), **note}, ensure_ascii=False))
        except StateError as exc:
            log.debug("health note not written: %s", exc)
            return
        self._health_note = json.dumps(note, ensure_ascii=False)
        self._health_written = time.monotonic()

    def refresh_gauges(self) -> None:
        """Set the gauges read from the state (before /metrics is served, after each poll)."""
        try:
            failing = len(self._failing_feeds(1))
        except StateError as exc:
            log.warning("metrics: cannot read the state: %s", exc)
            return
        metrics.FEEDS_FAILING.set(failing)
        self.deliverer.update_gauges()  # depth and dead messages (a `monitor alerts retry` elsewhere too)
        metrics.WAL_BYTES.set(self.db.wal_bytes())

    def _failing_feeds(self, threshold: int) -> list[str]:
        """Configured feeds with at least ``threshold`` errors in a row (a feed removed
        from the config keeps its row in the state, but is no longer our problem)."""
        configured = {f.name for f in self.config.feeds}
        return [name for name in state_feeds.failing(self.db, threshold) if name in configured]

    def status_line(self) -> str:
        """The STATUS= line ``systemctl status`` shows: feeds, last poll, alerts sent today (and what is stuck)."""
        failing = len(self._failing_feeds(1))
        last = state_feeds.last_poll(self.db)
        sent = state_outbox.sent_since(self.db, time.time() - 86400)
        last_text = datetime.fromtimestamp(last, UTC).strftime("%H:%M:%S") if last else "never"
        line = (f"{len(self.config.feeds)} feeds ({failing} failing), last poll {last_text} UTC, "
                f"{sent} alerts sent in 24h")
        stuck = self.stuck()
        if stuck:
            line += "; STUCK: " + "; ".join(map(str, stuck))
        return line

    def health(self) -> HealthReport:
        """``/healthz``: ``stuck`` when no progress is made (the watchdog stops too), ``degraded``
        when feeds keep failing, the outbox backs up, a task crashed or the last reload failed."""
        reasons = self._reasons()
        stuck = [r for r in self.stuck() if str(r) not in {str(x) for x in reasons}]
        reasons += stuck
        details: dict[str, Any] = {"feeds": len(self.config.feeds),
                                   "uptime_seconds": round(time.time() - self.started_at)}
        try:
            counts = state_outbox.counts(self.db)
            details.update(failing_feeds=len(self._failing_feeds(FAILING_AFTER)),
                           outbox_depth=counts.get("pending", 0) + counts.get("sending", 0),
                           dead=counts.get("dead", 0))
            metrics.OUTBOX_DEPTH.set(details["outbox_depth"])
        except StateError:
            pass  # already a reason
        if self._held_reload:
            details["reload_held_back"] = self._held_reload
        return HealthReport(status=_status_of(reasons), reasons=[str(r) for r in reasons], details=details)


def _status_of(reasons: list[Reason]) -> str:
    if any(r.stuck for r in reasons):
        return "stuck"
    return "degraded" if reasons else "ok"

