"""/healthz and /metrics over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from monitor import metrics
from monitor.service.http_api import HealthReport, start_http_server
from monitor.service.settings import HttpSettings

ON = HttpSettings(enabled=True, host="127.0.0.1", port=0)


def run(coro):
    return asyncio.run(coro)


def test_healthz_follows_the_health_callback():
    state = {"failing": []}

    def health() -> HealthReport:
        if state["failing"]:
            return HealthReport("degraded", [f"feed {f!r} failing" for f in state["failing"]], {"feeds_failing": 1})
        return HealthReport("ok", [], {"feeds_ok": 3, "outbox_depth": 0})

    async def scenario():
        server = await start_http_server(ON, health)
        try:
            async with httpx.AsyncClient(base_url=server.url, trust_env=False) as client:
                ok = await client.get("/healthz")
                state["failing"].append("عنب بلدي")
                bad = await client.get("/healthz")
                return ok, bad
        finally:
            await server.close()

    ok, bad = run(scenario())
    assert ok.status_code == 200
    assert ok.json() == {"status": "ok", "reasons": [], "feeds_ok": 3, "outbox_depth": 0}
    assert bad.status_code == 503
    assert bad.json()["status"] == "degraded"
    assert bad.json()["reasons"] == ["feed 'عنب بلدي' failing"]


def test_a_health_callback_that_raises_reports_degraded_not_a_crash():
    def health() -> HealthReport:
        raise RuntimeError("state db locked")

    async def scenario():
        server = await start_http_server(ON, health)
        try:
            async with httpx.AsyncClient(base_url=server.url, trust_env=False) as client:
                first = await client.get("/healthz")
                again = await client.get("/healthz")
                return first, again
        finally:
            await server.close()

    first, again = run(scenario())
    assert first.status_code == again.status_code == 503
    assert first.json()["reasons"] == ["health check failed: RuntimeError"]


def test_async_health_callback_is_awaited():
    async def health() -> HealthReport:
        return HealthReport("ok")

    async def scenario():
        server = await start_http_server(ON, health)
        try:
            async with httpx.AsyncClient(base_url=server.url, trust_env=False) as client:
                return await client.get("/healthz")
        finally:
            await server.close()

    assert run(scenario()).status_code == 200


def test_metrics_parse_with_prometheus_parser():
    metrics.POLLS.labels(outcome="ok").inc()
    metrics.MATCHES.labels(rule="bukamal").inc(2)
    metrics.OUTBOX_DEPTH.set(7)

    async def scenario():
        server = await start_http_server(ON, lambda: HealthReport())
        try:
            async with httpx.AsyncClient(base_url=server.url, trust_env=False) as client:
                return await client.get("/metrics")
        finally:
            await server.close()

    resp = run(scenario())
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(resp.text)}
    for name in ("monitor_polls", "monitor_fetch_errors", "monitor_items", "monitor_rule_matches",
                 "monitor_alerts", "monitor_delivery_latency_seconds", "monitor_outbox_depth",
                 "monitor_state_wal_bytes"):
        assert name in families, name
    depth = families["monitor_outbox_depth"].samples[0].value
    assert depth == 7
    matches = {s.labels.get("rule"): s.value for s in families["monitor_rule_matches"].samples
               if s.name == "monitor_rule_matches_total"}
    assert matches["bukamal"] >= 2


def test_unknown_paths_methods_and_garbage_are_refused_cleanly():
    async def raw(port: int, data: bytes) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(data)
        await writer.drain()
        out = await reader.read()
        writer.close()
        return out

    async def scenario():
        server = await start_http_server(ON, lambda: HealthReport())
        try:
            async with httpx.AsyncClient(base_url=server.url, trust_env=False) as client:
                missing = await client.get("/admin")
                post = await client.post("/healthz", content=b"x")
                head = await client.head("/healthz")
            garbage = await raw(server.port, b"\x00\xff nonsense\r\n\r\n")
            huge = await raw(server.port, b"GET /healthz HTTP/1.1\r\nX: " + b"a" * 40000 + b"\r\n\r\n")
            after = await raw(server.port, b"GET /healthz HTTP/1.0\r\n\r\n")
            return missing, post, head, garbage, huge, after
        finally:
            await server.close()

    missing, post, head, garbage, huge, after = run(scenario())
    assert missing.status_code == 404
    assert post.status_code == 405 and post.headers["allow"] == "GET, HEAD"
    assert head.status_code == 200 and head.content == b""
    assert garbage.startswith(b"HTTP/1.1 400")
    assert huge.startswith(b"HTTP/1.1 431")
    assert after.startswith(b"HTTP/1.1 200")  # still serving


def test_disabled_by_default_and_inert():
    assert HttpSettings().enabled is False
    assert (HttpSettings().host, HttpSettings().port) == ("127.0.0.1", 9977)

    async def scenario():
        server = await start_http_server(HttpSettings(), lambda: HealthReport())
        await server.close()
        return server

    server = run(scenario())
    assert server.port is None and server.url is None


def test_settings_are_strict():
    with pytest.raises(ValidationError):
        HttpSettings(enabled=True, bind="0.0.0.0")
    with pytest.raises(ValidationError):
        HttpSettings(port=70000)
