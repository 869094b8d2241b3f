"""The watchdog comes from progress, not from a timer that would survive a hang.

In-process (so the test can hang the loop and wedge the scheduler on purpose)
but otherwise real: a real ``Daemon`` with its scheduler, a real state file,
and a real AF_UNIX datagram socket standing in for systemd's NOTIFY_SOCKET.
The process-level behaviour (READY, STOPPING, exit codes, the 20 MB feed) is
in ``test_daemon_process.py``.
"""

from __future__ import annotations

import asyncio
import time

import yaml
from conftest import ROOT

from monitor.service.daemon import Daemon
from monitor.service.sdnotify import Notifier

WATCHDOG_USEC = 1_000_000  # a ping every 0.5 s


def test_pings_stop_when_the_loop_hangs_or_the_scheduler_stalls(tmp_path, notify, restore_logging):
    path = notify.path
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "state_path": str(tmp_path / "state.sqlite3"), "rules": [str(ROOT / "rules")],
        "channels": {"console": {"url": "console://"}}, "feeds": [],
    }), encoding="utf-8")
    def pings(since: float, until: float | None = None) -> list[float]:
        return [t for t in notify.times("WATCHDOG", "1") if t >= since and (until is None or t <= until)]

    async def scenario() -> dict:
        daemon = Daemon(config, journald=False)
        daemon.notifier = Notifier(str(path), WATCHDOG_USEC)
        daemon._heartbeat_every = daemon.notifier.watchdog_interval
        daemon.setup()
        runner = asyncio.create_task(daemon.run())
        out: dict = {}
        try:
            deadline = time.monotonic() + 20
            while not pings(0) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert pings(0), notify.snapshot()

            # 1. The loop hangs (a blocking call in a coroutine): no ping can be sent meanwhile.
            await asyncio.sleep(1.0)
            hang_start = time.monotonic()
            time.sleep(2.0)  # noqa: ASYNC101 - blocking the loop on purpose
            hang_end = time.monotonic()
            await asyncio.sleep(1.0)
            out["during_hang"] = pings(hang_start + 0.05, hang_end - 0.05)
            out["after_hang"] = pings(hang_end)

            # 2. The loop runs but the scheduler makes no progress: pings stop after a grace
            #    period, and /healthz (Daemon.health) says why.
            assert daemon.health().status == "ok", daemon.health()
            daemon.scheduler.pause()
            paused = time.monotonic()
            deadline = paused + 20
            while daemon.scheduler_stalled() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            stalled_at = time.monotonic()
            await asyncio.sleep(1.5)
            out["stall_detected_after"] = stalled_at - paused
            out["pings_while_stalled"] = pings(stalled_at + 0.6, time.monotonic())
            out["health"] = daemon.health()

            # 3. The scheduler resumes: pings resume, health is ok again.
            daemon.scheduler.resume()
            resumed = time.monotonic()
            deadline = resumed + 10
            while not pings(resumed) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            out["resumed_after"] = (pings(resumed) or [float("inf")])[0] - resumed
            out["health_after"] = daemon.health()
        finally:
            daemon.request_stop()
            out["rc"] = await asyncio.wait_for(runner, 30)
        return out

    out = asyncio.run(scenario())
    assert out["during_hang"] == [], "a ping was sent while the event loop was blocked"
    assert out["after_hang"], "pings resume when the loop does"
    assert out["stall_detected_after"] < 10
    assert out["pings_while_stalled"] == [], "pings went on while the scheduler was stalled"
    assert out["health"].status == "degraded"
    assert any(r.startswith("watchdog: scheduler stalled") for r in out["health"].reasons), out["health"]
    assert out["resumed_after"] < 3
    assert out["health_after"].status == "ok", out["health_after"]
    assert out["rc"] == 0
    time.sleep(0.2)
    assert notify.times("STOPPING", "1")
