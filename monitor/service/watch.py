"""Hot reload: notice when a config or rules file changes, then call back once.

Polls (mtime, size, inode) of the watched files every ``poll_interval``
seconds instead of using inotify: a few ``stat`` calls a second cost nothing,
work the same on every filesystem (NFS, bind mounts, the service's read-only
sandbox), and need no extra dependency. The inode catches editors that save by
writing a new file and renaming it over the old one.

Debounce: an editor or ``git pull`` touches several files in quick
succession; the callback runs once, ``debounce`` seconds after the *last*
change seen, so the daemon never reloads a half-written rule set.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = ["FileWatcher"]

RULE_SUFFIXES = (".yaml", ".yml")

Snapshot = dict[str, tuple[int, int, int]]


class FileWatcher:
    """Watches files, and directories' ``*.yaml``/``*.yml`` files, recursively.

    ``on_change`` is awaited once per burst of changes; an exception in it is
    logged and watching goes on (the old rules keep running meanwhile).
    """

    def __init__(
        self,
        paths: Iterable[Path],
        on_change: Callable[[], Awaitable[None]],
        debounce: float = 1.0,
        *,
        poll_interval: float = 1.0,
    ) -> None:
        self.paths = [Path(p) for p in paths]
        self.on_change = on_change
        self.debounce = max(0.0, float(debounce))
        self.poll_interval = max(0.01, float(poll_interval))
        self.scans = 0      # completed scans (lets tests wait for "nothing happened")
        self.triggers = 0   # on_change calls
        self._last: Snapshot = {}

    def snapshot(self) -> Snapshot:
        """(mtime_ns, size, inode) of every watched file that exists now."""
        snap: Snapshot = {}
        for path in self.paths:
            for file in _files(path):
                try:
                    st = os.stat(file)
                except OSError:
                    continue  # vanished between listing and stat: next scan sees it
                snap[str(file)] = (st.st_mtime_ns, st.st_size, st.st_ino)
        return snap

    def rebaseline(self) -> None:
        """Accept the files as they are now (e.g. after a SIGHUP reload)."""
        self._last = self.snapshot()

    async def run(self, stop: asyncio.Event) -> None:
        """Watch until ``stop`` is set."""
        self._last = self.snapshot()
        changed_at: float | None = None
        while not stop.is_set():
            wait = self.poll_interval
            if changed_at is not None:
                wait = min(wait, max(0.0, changed_at + self.debounce - time.monotonic()))
            try:
                await asyncio.wait_for(stop.wait(), timeout=wait)
                return
            except TimeoutError:
                pass
            try:
                current = self.snapshot()
            except Exception as exc:  # noqa: BLE001 - never let the watcher die
                log.warning("watch: cannot scan %s: %s", ", ".join(map(str, self.paths)), exc)
                continue
            self.scans += 1
            if current != self._last:
                log.debug("watch: change in %s", _describe(self._last, current))
                self._last = current
                changed_at = time.monotonic()
            elif changed_at is not None and time.monotonic() - changed_at >= self.debounce:
                changed_at = None
                self.triggers += 1
                try:
                    await self.on_change()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("watch: reload after a file change failed")


def _files(path: Path) -> list[Path]:
    try:
        if path.is_dir():
            return sorted(p for p in path.rglob("*") if p.suffix in RULE_SUFFIXES and p.is_file())
        return [path]
    except OSError:
        return []


def _describe(old: Snapshot, new: Snapshot) -> str:
    names = sorted(set(old) ^ set(new) | {k for k in old.keys() & new.keys() if old[k] != new[k]})
    return ", ".join(names[:5]) + (" ..." if len(names) > 5 else "")
