"""Optional HTTP endpoint (off by default): ``/healthz`` and ``/metrics``.

Runs on the daemon's own asyncio loop (``asyncio.start_server``), so there is
no extra thread and nothing to synchronise: the health callback reads the
daemon's state directly. prometheus_client's own ``start_http_server`` would
add a thread and its ASGI app would need a web server; two GET routes do not
justify either. The parser is deliberately small and bounded: request head
at most 16 KiB, read within 5 s, one request per connection, GET/HEAD only.

Meant for 127.0.0.1 (the default): it has no authentication. The unit's
``IPAddressDeny=`` is not set because the daemon must reach the feeds.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from monitor import metrics
from monitor.service.settings import HttpSettings

log = logging.getLogger(__name__)

__all__ = ["HttpSettings", "HealthReport", "HttpServer", "start_http_server"]

MAX_HEAD_BYTES = 16 * 1024
READ_TIMEOUT = 5.0


@dataclass
class HealthReport:
    """What ``/healthz`` says: ``status`` "ok" answers 200, anything else 503.

    ``reasons`` are short phrases ("feed 'x' failing for 3 polls", "outbox
    backlog 120", "watchdog: scheduler stalled 95 s"); ``details`` is any
    JSON-able summary (feeds ok/failing, outbox depth, last poll...).
    """

    status: str = "ok"
    reasons: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


HealthSource = Callable[[], HealthReport | Awaitable[HealthReport]]


class HttpServer:
    """A running endpoint; ``port`` is the bound port, ``close()`` stops it."""

    def __init__(self, server: asyncio.Server | None, health: HealthSource,
                 on_metrics: Callable[[], None] | None = None) -> None:
        self._server = server
        self._health = health
        self._on_metrics = on_metrics
        self.host: str | None = None
        self.port: int | None = None
        if server is not None and server.sockets:
            self.host, self.port = server.sockets[0].getsockname()[:2]

    @property
    def url(self) -> str | None:
        return f"http://{self.host}:{self.port}" if self.port is not None else None

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
            except (asyncio.LimitOverrunError, ValueError):
                await _respond(writer, 431, b"request head too large\n", "text/plain")
                return
            except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                return
            parts = head.split(b"\r\n", 1)[0].decode("latin-1").split()
            if len(parts) != 3 or not parts[2].startswith("HTTP/"):
                await _respond(writer, 400, b"bad request\n", "text/plain")
                return
            method, target = parts[0], parts[1].split("?", 1)[0]
            if method not in ("GET", "HEAD"):
                await _respond(writer, 405, b"method not allowed\n", "text/plain", {"Allow": "GET, HEAD"})
                return
            if target == "/healthz":
                report = await self._report()
                body = json.dumps({"status": report.status, "reasons": report.reasons, **_jsonable(report.details)},
                                  ensure_ascii=False, default=str).encode() + b"\n"
                await _respond(writer, 200 if report.ok else 503, body, "application/json; charset=utf-8",
                               head_only=method == "HEAD")
            elif target == "/metrics":
                if self._on_metrics is not None:
                    try:
                        self._on_metrics()  # refresh gauges read from the state
                    except Exception as exc:  # noqa: BLE001 - serve what we have
                        log.warning("http: refreshing metrics failed: %s", exc)
                await _respond(writer, 200, generate_latest(metrics.REGISTRY), CONTENT_TYPE_LATEST,
                               head_only=method == "HEAD")
            else:
                await _respond(writer, 404, b"not found: try /healthz or /metrics\n", "text/plain")
        except Exception:
            log.exception("http: error while answering a request")
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass

    async def _report(self) -> HealthReport:
        try:
            result = self._health()
            if inspect.isawaitable(result):
                result = await result
            if not isinstance(result, HealthReport):
                raise TypeError(f"health callback returned {type(result).__name__}")
            return result
        except Exception as exc:  # noqa: BLE001
            log.warning("http: health callback failed: %s", exc)
            return HealthReport("degraded", [f"health check failed: {type(exc).__name__}"])


def _jsonable(details: dict[str, Any]) -> dict[str, Any]:
    # "status" and "reasons" belong to the report itself.
    return {k: v for k, v in (details or {}).items() if k not in ("status", "reasons")}


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            431: "Request Header Fields Too Large", 503: "Service Unavailable"}


async def _respond(writer: asyncio.StreamWriter, status: int, body: bytes, content_type: str,
                   extra: dict[str, str] | None = None, *, head_only: bool = False) -> None:
    headers = {"Content-Type": content_type, "Content-Length": str(len(body)),
               "Cache-Control": "no-store", "Connection": "close", **(extra or {})}
    head = f"HTTP/1.1 {status} {_REASONS.get(status, '')}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    writer.write(head.encode("latin-1") + b"\r\n" + (b"" if head_only else body))
    await writer.drain()


async def start_http_server(settings: HttpSettings, health: HealthSource,
                            on_metrics: Callable[[], None] | None = None) -> HttpServer:
    """Start serving on ``settings.host:settings.port`` in the running loop.

    ``on_metrics`` (optional) runs before each ``/metrics`` answer, e.g. to set
    gauges that are read from the state rather than counted.

    With ``settings.enabled`` false, returns an inert server (``port`` None,
    ``close()`` a no-op) so the caller needs no special case. A port already
    in use raises ``OSError``: the daemon should report it and carry on.
    """
    if not settings.enabled:
        return HttpServer(None, health, on_metrics)
    holder: list[HttpServer] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await holder[0]._handle(reader, writer)

    server = await asyncio.start_server(handle, settings.host, settings.port, limit=MAX_HEAD_BYTES)
    holder.append(HttpServer(server, health, on_metrics))
    if settings.host not in ("127.0.0.1", "::1", "localhost"):
        log.warning("http: serving on %s, not loopback; /healthz and /metrics have no authentication",
                    settings.host)
    log.info("http: serving /healthz and /metrics on %s", holder[0].url)
    return holder[0]
