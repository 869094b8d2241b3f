"""Long-lived tasks that come back when they die.

The delivery task once died on ``database is locked`` and the daemon ran on,
delivering nothing, with a healthy ``/healthz``. Every long-lived coroutine of
the daemon (delivery, housekeeping, the file watcher, the status loop) runs
under a ``Supervisor``: when it raises, the error is logged with its
traceback, the task is started again after a backoff (1 s, doubling, at most
``MAX_BACKOFF``), and ``failing()`` names it until it has run for
``HEALTHY_AFTER`` seconds without dying, so ``/healthz`` and ``monitor
status`` say which part is in trouble. A task that returns while the daemon is
not stopping is restarted the same way: nothing here is meant to end early.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["Supervisor", "TaskHealth", "MAX_BACKOFF", "HEALTHY_AFTER"]

#: Longest wait before a crashed task is started again.
MAX_BACKOFF = 60.0
#: A task that ran this long before it died starts again at once (a crash, not a crash loop).
HEALTHY_AFTER = 60.0

TaskFactory = Callable[[], Coroutine[Any, Any, None]]


@dataclass
class TaskHealth:
    """What the supervisor knows of one task."""

    name: str
    crashes: int = 0            # in a row: reset once the task has run HEALTHY_AFTER
    last_error: str | None = None
    started_at: float = 0.0     # clock time of the latest start
    restarts: int = 0           # in total, for the logs and the tests

    def failing(self, now: float) -> bool:
        return self.crashes > 0 and now - self.started_at < HEALTHY_AFTER


class Supervisor:
    """Runs named tasks until ``stop`` is set, restarting any that dies."""

    def __init__(self, stop: asyncio.Event, *, clock: Callable[[], float] = time.monotonic,
                 first_backoff: float = 1.0) -> None:
        self.stop = stop
        self.clock = clock
        self.first_backoff = first_backoff
        self.health: dict[str, TaskHealth] = {}
        self._runners: dict[str, asyncio.Task[None]] = {}

    def start(self, name: str, factory: TaskFactory) -> asyncio.Task[None]:
        """Run ``factory()`` as ``name`` under supervision (again and again if it dies)."""
        self.health[name] = TaskHealth(name)
        runner = asyncio.get_running_loop().create_task(self._supervise(name, factory), name=f"supervise:{name}")
        self._runners[name] = runner
        return runner

    @property
    def runners(self) -> list[asyncio.Task[None]]:
        return list(self._runners.values())

    def failing(self) -> list[TaskHealth]:
        """Tasks that died and have not yet run ``HEALTHY_AFTER`` since."""
        now = self.clock()
        return [h for h in self.health.values() if h.failing(now)]

    async def _supervise(self, name: str, factory: TaskFactory) -> None:
        health = self.health[name]
        while not self.stop.is_set():
            health.started_at = self.clock()
            try:
                await factory()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the point of a supervisor: logged with its traceback below
                self._crashed(health, f"{type(exc).__name__}: {exc}")
                log.error("task %s died (%d in a row), restarting in %.0f s: %s", name, health.crashes,
                          self._backoff(health), health.last_error, exc_info=exc)
            else:
                if self.stop.is_set():
                    return
                self._crashed(health, "returned while the daemon runs")
                log.error("task %s ended on its own, restarting in %.0f s", name, self._backoff(health))
            try:
                await asyncio.wait_for(self.stop.wait(), timeout=self._backoff(health))
            except TimeoutError:
                pass
            health.restarts += 1

    def _crashed(self, health: TaskHealth, error: str) -> None:
        if self.clock() - health.started_at >= HEALTHY_AFTER:
            health.crashes = 0
        health.crashes += 1
        health.last_error = error

    def _backoff(self, health: TaskHealth) -> float:
        return min(MAX_BACKOFF, self.first_backoff * 2.0 ** max(0, health.crashes - 1))
