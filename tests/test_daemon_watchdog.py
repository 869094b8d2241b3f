"""The watchdog comes from progress, not from a timer that would survive a hang.

In-process (so the test can hang the loop, hold a poll and wedge the scheduler
on purpose) but otherwise real: a real ``Daemon`` with its scheduler, a real
state file, a real loopback feed server, and a real AF_UNIX datagram socket
standing in for systemd's NOTIFY_SOCKET. Time as the daemon judges it is an
injected clock the test moves, so "three intervals without a recorded poll"
needs no waiting; every wait below is for an event, with a deadline only
against a hang. The process-level behaviour is in test_daemon_process.py and
test_daemon_reliability.py.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import yaml
from conftest import LOOPBACK_FETCH, ROOT
from feedfarm import rss

from monitor.service.daemon import Daemon
from monitor.service.sdnotify import Notifier

WATCHDOG_USEC = 1_000_000  # a ping every 0.5 s
LIMIT = 30.0  # against a hang only


class Clock:
    def __init__(self) -> None:
        self.now = time.monotonic()

    def __call__(self) -> float:
        return self.now


class Lines(logging.Handler):
    """(monotonic time, message) of every record of the monitor's loggers."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[tuple[float, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((time.monotonic(), record.getMessage()))

    def first(self, text: str, after: float) -> float | None:
        return next((t for t, line in self.lines if t >= after and text in line), None)


async def until(predicate, what: str) -> None:
    deadline = time.monotonic() + LIMIT
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {LIMIT:.0f} s")
        await asyncio.sleep(0.02)


def test_pings_stop_when_the_loop_hangs_a_poll_makes_no_progress_or_the_scheduler_stalls(
        tmp_path, notify, restore_logging, feedfarm):
    release = threading.Event()

    def held(handler, route) -> None:  # answers only when the test lets it
        release.wait(LIMIT * 2)
        handler._send(200, rss().encode(), {})

    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "state_path": str(tmp_path / "state.sqlite3"), "rules": [str(ROOT / "rules")],
        "channels": {"console": {"url": "console://"}},
        "feeds": [{"name": "held", "url": feedfarm.add("/held.xml", handler=held), "interval": "10s"}],
        "fetch": {**LOOPBACK_FETCH, "timeout": 120},
    }), encoding="utf-8")
    log = Lines()
    logging.getLogger("monitor").addHandler(log)

    def pings(since: float, until_: float | None = None) -> list[float]:
        return [t for t in notify.times("WATCHDOG", "1") if t >= since and (until_ is None or t <= until_)]

    async def scenario() -> dict:
        clock = Clock()
        daemon = Daemon(config, journald=False, clock=clock)
        daemon.notifier = Notifier(notify.path, WATCHDOG_USEC)
        daemon._heartbeat_every = daemon.notifier.watchdog_interval
        daemon.setup()
        runner = asyncio.create_task(daemon.run())
        out: dict = {}
        try:
            await until(lambda: pings(0), "a first ping")

            # 1. The loop hangs (a blocking call in a coroutine): no ping can be sent meanwhile.
            hang_start = time.monotonic()
            time.sleep(2.0)  # blocking the loop on purpose
            hang_end = time.monotonic()
            await until(lambda: pings(hang_end), "a ping after the hang")
            out["during_hang"] = pings(hang_start + 0.05, hang_end - 0.05)

            # 2. The feed's poll never finishes: once three of its intervals (and a fetch timeout)
            #    pass on the daemon's clock without a recorded poll, it is stuck and pings stop.
            await until(lambda: feedfarm.hits("/held.xml") == 1, "the held poll in flight")
            assert daemon.health().status == "ok", daemon.health()
            clock.now += 3 * 10 + 120 + 10 + 1
            daemon.check()
            marker = time.monotonic()
            await until(lambda: log.first("watchdog: no progress", marker), "the watchdog giving up")
            silent_from = log.first("watchdog: no progress", marker)
            out["health_stuck"] = daemon.health()
            await asyncio.sleep(3 * daemon.notifier.watchdog_interval)
            out["pings_while_stuck"] = pings(silent_from)

            # 3. The server answers: the poll is recorded, pings resume.
            release.set()
            await until(lambda: log.first("feed held: 2 items", marker), "the held poll recorded")
            daemon.check()
            resumed = time.monotonic()
            await until(lambda: pings(resumed), "pings after the poll was recorded")
            out["health_after_poll"] = daemon.health()

            # 4. The loop runs but the scheduler makes no progress: pings stop, /healthz says why.
            daemon.scheduler.pause()
            clock.now += 10 + 3 * daemon._heartbeat_every  # beyond max(3 heartbeats, 5 s)
            marker = time.monotonic()
            await until(lambda: log.first("watchdog: no progress", marker), "the watchdog giving up again")
            silent_from = log.first("watchdog: no progress", marker)
            out["health_stalled"] = daemon.health()
            await asyncio.sleep(3 * daemon.notifier.watchdog_interval)
            out["pings_while_stalled"] = pings(silent_from)

            # 5. The scheduler resumes: its heartbeat runs, pings resume, health is ok again.
            daemon.scheduler.resume()
            resumed = time.monotonic()
            await until(lambda: pings(resumed), "pings after the scheduler resumed")
            out["health_resumed"] = daemon.health()
        finally:
            daemon.request_stop()
            out["rc"] = await asyncio.wait_for(runner, LIMIT)
        return out

    try:
        out = asyncio.run(scenario())
    finally:
        release.set()
        logging.getLogger("monitor").removeHandler(log)
    assert out["during_hang"] == [], "a ping was sent while the event loop was blocked"
    stuck = out["health_stuck"]
    assert stuck.status == "stuck" and any(r.startswith("feed held: no poll recorded") for r in stuck.reasons), stuck
    assert out["pings_while_stuck"] == [], "pings went on while no poll was recorded"
    assert out["health_after_poll"].status == "ok", out["health_after_poll"]
    stalled = out["health_stalled"]
    assert stalled.status == "stuck" and any(r.startswith("scheduler: stalled") for r in stalled.reasons), stalled
    assert out["pings_while_stalled"] == [], "pings went on while the scheduler was stalled"
    assert out["health_resumed"].status == "ok", out["health_resumed"]
    assert out["rc"] == 0
    notify.wait_for("STOPPING", "1", timeout=LIMIT)
