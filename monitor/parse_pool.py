"""Parse feeds off the event loop, on every core: a small process pool with a thread fallback.

``parse_feed`` is pure CPU (feedparser ~20-25 ms for a 20-item Arabic feed).
In threads it holds the GIL, so a cycle of 1,000 changed feeds used one core
and slowed the event loop's own work (fetching, matching, the state commit).
``ParsePool`` runs it in worker processes instead:

* ``forkserver`` context (never ``fork``: the daemon has threads), with
  ``monitor.parse`` preloaded in the fork server, so a worker starts in
  milliseconds and shares feedparser's pages copy-on-write. Workers run only
  ``_parse_in_worker``; multiprocessing also re-imports the main module in
  each child, as it always does (``python -m monitor`` → ``monitor.cli``,
  about +11 MB per worker).
* A bounded queue: at most ``max_pending`` bodies are handed to the pool at a
  time; further callers wait on an ``asyncio.Semaphore`` (on the loop, not
  blocking it), so a burst of 1,000 feeds never pickles 1,000 bodies at once.
* A worker that dies (OOM kill, segfault in a C extension) breaks a
  ``ProcessPoolExecutor`` for good. The pool is replaced at once, and each feed
  whose parse was lost gets ``ParseError(kind="worker_crashed")``: a per-feed
  error and a retry at the next poll, never a hung poll and never a dead daemon.
* ``ParseError`` is not picklable as is (its ``__init__`` takes three
  arguments), so the worker returns it as a tuple and it is re-raised here.

``workers=0`` (or ``ParsePool.for_feeds`` on one core or a handful of feeds,
e.g. ``run --once`` on the demo) parses in a thread via ``asyncio.to_thread``:
starting processes would cost more than it saves. Either way the event loop
never runs a parse itself.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Mapping

from monitor.errors import ParseError
from monitor.models import ParsedFeed
from monitor.parse import parse_feed

log = logging.getLogger("monitor.parse_pool")

#: Below this many feeds a cycle is too small for worker processes to pay off.
MIN_FEEDS_FOR_PROCESSES = 20


def _parse_in_worker(body: bytes, headers: dict[str, str], url: str, feed_name: str,
                     encoding: str | None) -> tuple[str, Any]:
    """Runs in a worker process: ("ok", ParsedFeed) or ("error", (url, kind, message))."""
    try:
        return "ok", parse_feed(body, headers, url=url, feed_name=feed_name, encoding=encoding)
    except ParseError as exc:
        return "error", (exc.url, exc.kind, exc.message)
    except Exception as exc:  # parse_feed should not raise anything else; if it does, say what
        return "error", (url, "malformed", f"parser failed: {type(exc).__name__}: {exc}"[:500])


class ParsePool:
    """``await pool.parse(body, headers, url=..., feed_name=..., encoding=...)`` → ``ParsedFeed``.

    Create it anywhere; processes start on the first parse. ``close()`` stops them.
    """

    def __init__(self, workers: int = 2, *, max_pending: int | None = None,
                 target: Callable[..., tuple[str, Any]] = _parse_in_worker) -> None:
        self.workers = max(0, workers)
        self.max_pending = max_pending or max(1, 2 * self.workers)
        self._target = target
        self._executor: ProcessPoolExecutor | None = None
        self._slots: asyncio.Semaphore | None = None
        self.replaced = 0  # how many times a broken pool was replaced (tests, logs)
        self._closed = False

    @classmethod
    def for_feeds(cls, feeds: int, cpus: int | None = None) -> "ParsePool":
        """Processes on a multi-core machine with enough feeds; a thread otherwise."""
        cpus = cpus if cpus is not None else (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                              else os.cpu_count() or 1)
        if cpus < 2 or feeds < MIN_FEEDS_FOR_PROCESSES:
            return cls(workers=0)
        return cls(workers=min(cpus, 4))

    @property
    def uses_processes(self) -> bool:
        return self.workers > 0

    def _pool(self) -> ProcessPoolExecutor:
        if self._closed:
            raise RuntimeError("parse pool is closed")
        if self._executor is None:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(["monitor.parse"])
            self._executor = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx)
        return self._executor

    def _replace(self, broken: Executor) -> None:
        if self._executor is broken:
            self._executor = None
            self.replaced += 1
            broken.shutdown(wait=False, cancel_futures=True)
            log.error("a feed parser process died; started a new parser pool")

    async def parse(self, body: bytes, headers: Mapping[str, str], *, url: str, feed_name: str,
                    encoding: str | None = None) -> ParsedFeed:
        if not self.workers:
            return await asyncio.to_thread(parse_feed, body, headers, url=url, feed_name=feed_name,
                                           encoding=encoding)
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_pending)
        async with self._slots:
            executor = self._pool()
            try:
                status, value = await asyncio.get_running_loop().run_in_executor(
                    executor, self._target, bytes(body), dict(headers or {}), url, feed_name, encoding)
            except BrokenProcessPool:
                self._replace(executor)
                raise ParseError(url, "worker_crashed", "the parser process died while parsing this feed "
                                 "(out of memory or a crash); it is retried at the next poll") from None
        if status == "ok":
            return value
        raise ParseError(*value)

    def close(self) -> None:
        """Stop the workers; parses still queued get cancelled. Safe to call twice."""
        self._closed = True
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
