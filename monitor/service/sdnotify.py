"""sd_notify(3) for the daemon: READY, STATUS, WATCHDOG, STOPPING, RELOADING.

Hand-written (about forty lines of protocol) because the point is a property
the libraries lack: every send is **non-blocking**. A blocking ``sendto`` to a
receiver that does not read hangs the sender once the socket's queue
(``net.unix.max_dgram_qlen``, 10 by default) is full (reliability-findings
E.37). A daemon must never stall because systemd, or a test, is slow, so a
datagram that cannot be queued right now is dropped and counted instead.

Without ``NOTIFY_SOCKET`` (run from a shell, under tests) every method is a
no-op, so callers never need to check whether they run under systemd.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)

__all__ = ["Notifier"]


class Notifier:
    """Sends state changes to the service manager; never raises, never blocks.

    ``watchdog_interval`` is how often the daemon should call :meth:`watchdog`
    (half of ``WATCHDOG_USEC``, as sd_watchdog_enabled(3) advises), or
    ``None`` when systemd does not expect pings.
    """

    def __init__(self, address: str | None = None, watchdog_usec: int | None = None) -> None:
        self._address = _socket_address(address) if address else None
        self.watchdog_interval: float | None = (
            watchdog_usec / 2_000_000 if watchdog_usec and watchdog_usec > 0 else None
        )
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self.dropped = 0  # datagrams the receiver could not take (queue full, gone)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        """Build from ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and ``WATCHDOG_PID``.

        ``WATCHDOG_PID`` names the process systemd expects pings from; when it
        is another process (we were forked by it) this one has no watchdog.
        """
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET") or None
        usec: int | None = None
        try:
            usec = int(env.get("WATCHDOG_USEC", "") or 0) or None
            pid = env.get("WATCHDOG_PID")
            if usec and pid and int(pid) != os.getpid():
                usec = None
        except ValueError:
            log.warning("ignoring malformed WATCHDOG_USEC/WATCHDOG_PID")
            usec = None
        return cls(address, usec)

    @property
    def enabled(self) -> bool:
        """True when a service manager listens (``NOTIFY_SOCKET`` was set)."""
        return self._address is not None

    def ready(self) -> bool:
        """The config, rules and state are valid and the daemon is serving."""
        return self.send(READY="1")

    def status(self, text: str) -> bool:
        """One short human line shown by ``systemctl status`` (newlines removed)."""
        return self.send(STATUS=" ".join(str(text).split())[:400])

    def watchdog(self) -> bool:
        """"The main loop is making progress"; call every ``watchdog_interval``."""
        return self.send(WATCHDOG="1")

    def stopping(self) -> bool:
        """Shutdown has begun (SIGTERM): in-flight work is finishing."""
        return self.send(STOPPING="1")

    def reloading(self) -> bool:
        """A reload started; send :meth:`ready` again when it is done.

        ``MONOTONIC_USEC`` is included because ``Type=notify-reload``
        (systemd 253+) requires it; older managers ignore it.
        """
        return self.send(RELOADING="1", MONOTONIC_USEC=str(time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000))

    def send(self, **fields: str) -> bool:
        """Send ``KEY=value`` lines as one datagram; True if it was queued."""
        if self._address is None:
            return False
        payload = "\n".join(f"{k}={v}" for k, v in fields.items()).encode("utf-8", "replace")
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                    self._sock.setblocking(False)
                self._sock.sendto(payload, self._address)
                return True
            except (BlockingIOError, InterruptedError):
                self.dropped += 1  # receiver's queue is full: drop, never wait
            except OSError as exc:
                self.dropped += 1
                if self.dropped in (1, 100, 10_000):  # say it, but do not flood the log
                    log.warning("sd_notify to %s failed: %s", self._address, exc)
            except Exception as exc:  # noqa: BLE001 - must never take the daemon down
                self.dropped += 1
                log.warning("sd_notify failed unexpectedly: %r", exc)
            return False

    def close(self) -> None:
        """Close the socket (it is reopened on the next send)."""
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None


def _socket_address(value: str) -> str | bytes:
    """``@name`` is a Linux abstract socket (leading NUL byte); else a path."""
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    return value
