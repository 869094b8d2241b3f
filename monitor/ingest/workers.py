"""Parse feeds and analyze their new items off the event loop, on every core.

Two pure CPU stages of a poll run here: ``parse_feed`` (feedparser, ~9 ms for
a 20-item Arabic feed) and ``analyze_items`` (rule matching, dedup
fingerprint and MinHash of the new items, ~0.5 ms per item). In threads they
hold the GIL, so a cycle of 1,000 changed feeds used one core and slowed the
event loop's own work (fetching, the state commit). ``WorkerPool`` runs them
in worker processes instead:

* ``forkserver`` context (never ``fork``: the daemon has threads), with
  ``monitor.feeds.parse`` and ``monitor.ingest.analysis`` preloaded in the fork server, so
  a worker starts in milliseconds and shares those pages copy-on-write.
  Workers run only ``_parse_in_worker`` and ``_analyze_in_worker``;
  multiprocessing also re-imports the main module in each child, as it always
  does (the ``monitor`` script or ``python -m monitor`` → ``monitor.cli``, which
  imports only click at module level: under 1 MB per worker).
* The rules reach each worker once, at its start (``use(context)``; the
  pickled rule set is ~160 KB), not with every job. A reload calls ``use``
  again: the running workers finish what they hold and exit, and new ones
  start with the new rules. A poll that began before the reload still has the
  old context; its items are analyzed in a thread with exactly those rules.
* A bounded queue: at most ``max_pending`` jobs are handed to the pool at a
  time; further callers wait on an ``asyncio.Semaphore`` (on the loop, not
  blocking it), so a burst of 1,000 feeds never pickles 1,000 bodies at once.
* A worker that dies (OOM kill, segfault in a C extension) breaks a
  ``ProcessPoolExecutor`` for good. The pool is replaced at once, and each feed
  whose job was lost gets ``ParseError(kind="worker_crashed")``: a per-feed
  error and a retry at the next poll (nothing of the poll was recorded),
  never a hung poll and never a dead daemon.
* ``ParseError`` is not picklable as is (its ``__init__`` takes three
  arguments), so the worker returns it as a tuple and it is re-raised here.
* No orphans: killed with SIGKILL outside systemd, the daemon left its
  forkserver, workers and resource tracker (about 190 MB) running. Each worker
  gets the reading end of a pipe whose only writing end stays in the daemon;
  a thread in the worker blocks on it and exits the process at EOF, that is
  when the daemon is gone (however it died). The forkserver exits once no
  process holds its "alive" pipe (the daemon and the workers did), and the
  resource tracker once no process holds its own: the workers' exit takes
  both down. A pipe, not ``prctl(PR_SET_PDEATHSIG)``: a worker's parent is
  the forkserver, not the daemon, and a pipe works on every POSIX system.

``workers=0`` (or ``WorkerPool.for_feeds`` on one core or a handful of feeds,
e.g. ``run --once`` on the demo) runs both stages in a thread via
``asyncio.to_thread``: starting processes would cost more than it saves.
Either way the event loop never runs a parse or a rule match itself.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.connection import Connection
from typing import Any, cast

from monitor.errors import ParseError
from monitor.feeds.parse import parse_feed
from monitor.ingest.analysis import AnalysisContext, ItemAnalysis, analyze_items
from monitor.types import Item, ParsedFeed

log = logging.getLogger("monitor.ingest.workers")

#: Below this many feeds a cycle is too small for worker processes to pay off.
MIN_FEEDS_FOR_PROCESSES = 20

# -- in the worker processes ----------------------------------------------------

_context: AnalysisContext | None = None  # set once per worker by _start_worker


def _start_worker(context: AnalysisContext | None, daemon_alive: Connection | None = None) -> None:
    global _context
    _context = context
    if daemon_alive is not None:
        threading.Thread(target=_exit_with_the_daemon, args=(daemon_alive,), name="daemon-alive",
                         daemon=True).start()


def _exit_with_the_daemon(daemon_alive: Connection) -> None:
    """Block until the daemon's end of the pipe is closed (it died, or it closed the pool), then exit."""
    try:
        while True:
            daemon_alive.recv_bytes()  # the daemon never writes: this returns only at EOF (EOFError)
    except (EOFError, OSError):
        pass
    os._exit(0)


def _parse_in_worker(body: bytes, headers: dict[str, str], url: str, feed_name: str,
                     encoding: str | None) -> tuple[str, Any]:
    """Runs in a worker process: ("ok", ParsedFeed) or ("error", (url, kind, message))."""
    try:
        return "ok", parse_feed(body, headers, url=url, feed_name=feed_name, encoding=encoding)
    except ParseError as exc:
        return "error", (exc.url, exc.kind, exc.message)
    except Exception as exc:  # noqa: BLE001 - parse_feed should not raise anything else; if it does, say what
        return "error", (url, "malformed", f"parser failed: {type(exc).__name__}: {exc}"[:500])


def _analyze_in_worker(items: list[Item]) -> list[ItemAnalysis]:
    """Runs in a worker process, with the context it was started with."""
    if _context is None:  # pragma: no cover - the pool always starts workers with one
        raise RuntimeError("worker started without an analysis context")
    return analyze_items(items, _context)


# -- in the daemon ----------------------------------------------------------------


class WorkerPool:
    """``await pool.parse(body, headers, url=..., ...)`` → ``ParsedFeed``;
    ``await pool.analyze(items, context)`` → one ``ItemAnalysis`` per item.

    Create it anywhere; processes start on the first job. ``close()`` stops them.
    """

    def __init__(self, workers: int = 2, *, max_pending: int | None = None,
                 parse_target: Callable[..., tuple[str, Any]] = _parse_in_worker,
                 analyze_target: Callable[[list[Item]], list[ItemAnalysis]] = _analyze_in_worker) -> None:
        self.workers = max(0, workers)
        self.max_pending = max_pending or max(1, 2 * self.workers)
        self._parse_target = parse_target
        self._analyze_target = analyze_target
        self._context: AnalysisContext | None = None
        self._executor: ProcessPoolExecutor | None = None
        self._retired: list[ProcessPoolExecutor] = []  # replaced by a reload, finishing their jobs
        self._slots: asyncio.Semaphore | None = None
        self.replaced = 0  # how many times a broken pool was replaced (tests, logs)
        self.started = 0  # how many process pools were started (tests: a reload starts one)
        self._closed = False
        self._alive: tuple[Connection, Connection] | None = None  # (workers' end, the daemon's end)

    @staticmethod
    def workers_for(feeds: int, cpus: int | None = None) -> int:
        """Worker processes for this many feeds: one per core (at most 4) on a multi-core
        machine with enough feeds; 0 (a thread) otherwise."""
        cpus = cpus if cpus is not None else (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                              else os.cpu_count() or 1)
        if cpus < 2 or feeds < MIN_FEEDS_FOR_PROCESSES:
            return 0
        return min(cpus, 4)

    @classmethod
    def for_feeds(cls, feeds: int, cpus: int | None = None) -> WorkerPool:
        return cls(workers=cls.workers_for(feeds, cpus))

    def resize(self, workers: int) -> None:
        """Use ``workers`` processes from the next job on (a reload that added or removed
        many feeds); the running ones finish what they hold, as with ``use``."""
        workers = max(0, workers)
        if workers == self.workers:
            return
        log.info("worker processes: %d -> %d", self.workers, workers)
        self.workers = workers
        self.max_pending = max(1, 2 * workers)
        self._slots = None
        self._retire()

    @property
    def uses_processes(self) -> bool:
        return self.workers > 0

    def use(self, context: AnalysisContext) -> None:
        """Analyze with ``context`` from now on (start-up, reload).

        Running workers keep the old context: they finish the jobs they have and
        exit; the next job starts workers with the new one.
        """
        if context is self._context:
            return
        self._context = context
        self._retire()

    def _retire(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False)
            self._retired.append(executor)

    def _pool(self) -> ProcessPoolExecutor:
        if self._closed:
            raise RuntimeError("worker pool is closed")
        if self._executor is None:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(["monitor.feeds.parse", "monitor.ingest.analysis"])
            if self._alive is None:
                self._alive = ctx.Pipe(duplex=False)
            self._executor = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx,
                                                 initializer=_start_worker, initargs=(self._context, self._alive[0]))
            self.started += 1
        return self._executor

    def _replace(self, broken: Executor) -> None:
        if self._executor is broken:
            self._executor = None
            self.replaced += 1
            broken.shutdown(wait=False, cancel_futures=True)
            log.error("a worker process died; started a new worker pool")

    async def _run(self, url: str, what: str, target: Callable[..., Any], *args: Any) -> Any:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_pending)
        async with self._slots:
            executor = self._pool()
            try:
                return await asyncio.get_running_loop().run_in_executor(executor, target, *args)
            except BrokenProcessPool:
                self._replace(executor)
                raise ParseError(url, "worker_crashed", f"the worker process died while {what} (out of "
                                 "memory or a crash); it is retried at the next poll") from None

    async def parse(self, body: bytes, headers: Mapping[str, str], *, url: str, feed_name: str,
                    encoding: str | None = None) -> ParsedFeed:
        if not self.workers:
            return await asyncio.to_thread(parse_feed, body, headers, url=url, feed_name=feed_name,
                                           encoding=encoding)
        status, value = await self._run(url, "parsing this feed", self._parse_target,
                                        bytes(body), dict(headers or {}), url, feed_name, encoding)
        if status == "ok":
            return cast(ParsedFeed, value)
        raise ParseError(*value)

    async def analyze(self, items: list[Item], context: AnalysisContext, *, url: str = "") -> list[ItemAnalysis]:
        """Match and fingerprint ``items`` with ``context``'s rules.

        In the workers when they run with this context; in a thread otherwise
        (no processes, or a poll that started before a reload).
        """
        if not items:
            return []
        if not self.workers or context is not self._context:
            return await asyncio.to_thread(analyze_items, items, context)
        return cast(list[ItemAnalysis], await self._run(url, "matching this feed's items", self._analyze_target,
                                                         items))

    def close(self) -> None:
        """Stop the workers; jobs still queued get cancelled. Safe to call twice."""
        self._closed = True
        executors = self._retired + ([self._executor] if self._executor is not None else [])
        self._executor, self._retired = None, []
        for executor in executors:
            executor.shutdown(wait=True, cancel_futures=True)
        alive, self._alive = self._alive, None
        if alive is not None:
            for end in alive:
                end.close()
