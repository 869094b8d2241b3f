"""Fetch stage against a real loopback HTTP server (tests/feedfarm.py)."""

from __future__ import annotations

import asyncio
import gzip
import socket
import threading
import tracemalloc
import zlib

import pytest
from feedfarm import HOSTILE, gzip_bomb, rss
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.errors import FetchError, ParseError
from monitor.feeds.fetch import Fetcher, _BoundedInflater
from monitor.feeds.parse import parse_feed
from monitor.feeds.settings import FetchSettings


def run(coro):
    return asyncio.run(coro)


def loopback(**settings) -> FetchSettings:
    """The feed farm listens on 127.0.0.1, which the defaults refuse: these tests opt in."""
    return FetchSettings(**{"allow_private_addresses": True, **settings})


async def fetch(url, settings=None, **kw):
    async with Fetcher(settings or loopback(timeout=2)) as f:
        return await f.fetch(url, **kw)


async def fetch_error(url, settings=None, **kw) -> FetchError:
    with pytest.raises(FetchError) as info:
        await fetch(url, settings, **kw)
    return info.value


def test_200_then_304_with_etag(feedfarm):
    url = feedfarm.add("/f.xml", rss().encode(), etag='"v1"')
    first = run(fetch(url))
    assert first.status == 200 and first.etag == '"v1"'
    assert b"<rss" in first.body
    assert "content-encoding" not in first.headers and first.headers["content-type"].startswith("application/rss")
    second = run(fetch(url, etag=first.etag))
    assert second.status == 304 and second.not_modified and second.body == b""
    assert feedfarm.hits("/f.xml") == 2
    feedfarm.replace("/f.xml", rss([("جديد", "https://example.com/n", "x")]).encode(), etag='"v2"')
    third = run(fetch(url, etag=first.etag))
    assert third.status == 200 and "جديد".encode() in third.body and third.etag == '"v2"'


def test_304_on_if_modified_since(feedfarm):
    url = feedfarm.add("/lm.xml", rss().encode(), last_modified="Mon, 06 Nov 2017 10:00:00 GMT")
    first = run(fetch(url))
    assert first.last_modified == "Mon, 06 Nov 2017 10:00:00 GMT"
    assert run(fetch(url, last_modified=first.last_modified)).status == 304


@pytest.mark.parametrize("name,kind,status", [
    ("not_found", "status", 404),
    ("server_error", "status", 500),
    ("rate_limited", "status", 429),
    ("redirect_loop", "redirect", None),
    ("redirect_file", "redirect", None),
    ("gzip_bomb", "too_large", None),
    ("gzip_gzip", "encoding", None),
    ("brotli", "encoding", None),
    ("huge", "too_large", None),
    ("hang", "timeout", None),
    ("drip", "timeout", None),
])
def test_hostile_routes_give_clear_errors(feedfarm, name, kind, status):
    url = feedfarm.add(f"/h/{name}", **HOSTILE[name]())
    err = run(fetch_error(url, loopback(timeout=1)))
    assert err.kind == kind, err
    assert err.status == status
    assert err.url == url


def test_retry_after_seconds_and_date_are_parsed_and_clamped(feedfarm):
    err = run(fetch_error(feedfarm.add("/r1", **HOSTILE["rate_limited"]())))
    assert err.retry_after == 120
    err = run(fetch_error(feedfarm.add("/r2", **HOSTILE["unavailable_date"]())))
    assert 3000 < err.retry_after <= 3600
    err = run(fetch_error(feedfarm.add("/r3", b"", status=429, headers={"Retry-After": "99999999"})))
    assert err.retry_after == 6 * 3600
    err = run(fetch_error(feedfarm.add("/r4", b"", status=503, headers={"Retry-After": "soon-ish"})))
    assert err.retry_after is None and err.status == 503


def test_permanent_redirect_is_reported_temporary_is_not(feedfarm):
    new = feedfarm.add("/new.xml", rss().encode())
    feedfarm.add("/old.xml", status=301, headers={"Location": "/new.xml"})
    feedfarm.add("/tmp.xml", status=302, headers={"Location": "/new.xml"})
    feedfarm.add("/mixed.xml", status=302, headers={"Location": "/old.xml"})
    res = run(fetch(feedfarm.url("/old.xml")))
    assert res.status == 200 and res.final_url == new and res.permanent_redirect == new
    assert res.url == feedfarm.url("/old.xml")
    res = run(fetch(feedfarm.url("/tmp.xml")))
    assert res.final_url == new and res.permanent_redirect is None
    assert run(fetch(feedfarm.url("/mixed.xml"))).permanent_redirect is None


def test_redirect_limit_is_configurable(feedfarm):
    feedfarm.add("/a", status=302, headers={"Location": "/b"})
    feedfarm.add("/b", status=302, headers={"Location": "/c"})
    feedfarm.add("/c", rss().encode())
    assert run(fetch(feedfarm.url("/a"), loopback(max_redirects=2))).status == 200
    assert run(fetch_error(feedfarm.url("/a"), loopback(max_redirects=1))).kind == "redirect"


def test_only_http_urls():
    for url in ("file:///etc/passwd", "ftp://example.com/f", "javascript:alert(1)", "/etc/passwd"):
        assert run(fetch_error(url)).kind == "protocol"


def test_connection_refused_is_connect_error():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    assert run(fetch_error(f"http://127.0.0.1:{port}/feed")).kind == "connect"


def test_private_targets_refused_by_default(feedfarm):
    url = feedfarm.add("/p.xml", rss().encode())
    err = run(fetch_error(url, FetchSettings()))
    assert err.kind == "forbidden_target"
    assert feedfarm.hits("/p.xml") == 0


def test_204_is_an_error_not_an_empty_feed(feedfarm):
    assert run(fetch_error(feedfarm.add("/e", b"", status=204))).kind == "status"


def test_gzip_and_deflate_bodies_are_inflated(feedfarm):
    doc = rss().encode()
    raw_deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
    raw = raw_deflate.compress(doc) + raw_deflate.flush()
    cases = {
        "/gz": (gzip.compress(doc), "gzip"),
        "/xgz": (gzip.compress(doc), "x-gzip"),
        "/two-members": (gzip.compress(doc[:50]) + gzip.compress(doc[50:]), "gzip"),
        "/zlib": (zlib.compress(doc), "deflate"),
        "/raw-deflate": (raw, "deflate"),
        "/identity": (doc, "identity"),
    }
    for path, (body, coding) in cases.items():
        url = feedfarm.add(path, body, headers={"Content-Encoding": coding})
        assert run(fetch(url)).body == doc, path


def test_truncated_or_corrupt_gzip_is_an_encoding_error(feedfarm):
    body = gzip.compress(rss().encode())
    assert run(fetch_error(feedfarm.add("/t", body[: len(body) // 2],
                                        headers={"Content-Encoding": "gzip"}))).kind == "encoding"
    assert run(fetch_error(feedfarm.add("/c", b"not gzip at all",
                                        headers={"Content-Encoding": "gzip"}))).kind == "encoding"


def test_lying_content_length_is_a_parse_error_not_items(feedfarm):
    url = feedfarm.add("/lie", **HOSTILE["lying_length"]())
    res = run(fetch(url))
    assert len(res.body) == 100
    with pytest.raises(ParseError) as info:
        parse_feed(res.body, res.headers, url=url, feed_name="lie")
    assert info.value.kind == "malformed"


def test_gzip_bomb_costs_bounded_memory(feedfarm):
    url = feedfarm.add("/bomb", gzip_bomb(), headers={"Content-Encoding": "gzip"})
    cap = 1 << 20
    tracemalloc.start()
    try:
        err = run(fetch_error(url, loopback(max_bytes=cap)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert err.kind == "too_large"
    # 64 MiB would be decoded without the bounded inflater.
    assert peak < 8 * cap


class _ConcurrencyProbe:
    """A slow route handler that records the most requests the server held at once."""

    def __init__(self, farm) -> None:
        self.farm = farm
        self.active = self.most = 0
        self._lock = threading.Lock()
        self._body = rss().encode()

    def __call__(self, handler, route) -> None:
        with self._lock:
            self.active += 1
            self.most = max(self.most, self.active)
        self.farm.stopping.wait(0.15)
        with self._lock:
            self.active -= 1
        handler._send(200, self._body, {})


def test_per_host_limit_caps_concurrency(feedfarm):
    slow = _ConcurrencyProbe(feedfarm)
    urls = [feedfarm.add(f"/slow{i}", handler=slow) for i in range(6)]

    async def go():
        async with Fetcher(loopback(per_host=2, timeout=10)) as f:
            return await asyncio.gather(*(f.fetch(u) for u in urls))

    results = run(go())
    assert all(r.status == 200 for r in results)
    assert slow.most == 2


def _port_recorder(feedfarm, ports):
    body = rss().encode()

    def record(handler, route):
        ports.append(handler.client_address[1])
        if route.delay:
            feedfarm.stopping.wait(route.delay)
        handler._send(200, body, {})
    return record


def test_keep_alive_per_host_and_idle_pools_are_bounded(feedfarm):
    """One small pool per host: a host's connection is reused; beyond the idle cap the
    least recently used host's pool is closed (so 1,000 hosts never hold 4,000 sockets)."""
    ports: list[int] = []
    feedfarm.add("/p.xml", handler=_port_recorder(feedfarm, ports))
    host_a = feedfarm.url("/p.xml")
    host_b = host_a.replace("127.0.0.1", "localhost")

    async def go():
        # per_host 1 and max_keepalive 1: at most one idle pool of one connection.
        async with Fetcher(loopback(per_host=1, max_keepalive=1, timeout=5)) as f:
            for url in (host_a, host_a, host_b, host_b, host_a):
                assert (await f.fetch(url)).status == 200

    run(go())
    a1, a2, b1, b2, a3 = ports
    assert a1 == a2, "keep-alive within one host"
    assert b1 == b2 and b1 != a1
    assert a3 not in (a1, b1), "host A's idle pool was closed when host B's pool opened"


def test_a_busy_pool_is_never_closed_to_make_room(feedfarm):
    ports: list[int] = []
    feedfarm.add("/slow.xml", handler=_port_recorder(feedfarm, ports), delay=0.4)
    feedfarm.add("/fast.xml", handler=_port_recorder(feedfarm, []))
    slow_a = feedfarm.url("/slow.xml")
    fast_b = feedfarm.url("/fast.xml").replace("127.0.0.1", "localhost")

    async def go():
        async with Fetcher(loopback(per_host=1, max_keepalive=1, timeout=5)) as f:
            slow = asyncio.create_task(f.fetch(slow_a))
            await asyncio.sleep(0.1)  # host A's request is in flight
            fast = await f.fetch(fast_b)
            return await slow, fast

    slow, fast = run(go())
    assert slow.status == 200 and b"<rss" in slow.body
    assert fast.status == 200


def test_max_connections_caps_requests_across_hosts(feedfarm):
    slow = _ConcurrencyProbe(feedfarm)
    urls = [feedfarm.add(f"/c{i}", handler=slow) for i in range(4)]
    urls += [u.replace("127.0.0.1", "localhost") for u in urls]

    async def go():
        async with Fetcher(loopback(per_host=4, max_connections=3, timeout=10)) as f:
            return await asyncio.gather(*(f.fetch(u) for u in urls))

    assert all(r.status == 200 for r in run(go()))
    assert slow.most == 3


def test_hostile_feeds_do_not_affect_good_ones(feedfarm):
    """All hostile routes and good feeds polled together on one Fetcher: every good feed parses."""
    hostile = feedfarm.add_hostile_routes()
    good = {f"good{i}": feedfarm.add(f"/good{i}.xml", rss([(f"خبر {i}", f"https://example.com/{i}", "x")]).encode())
            for i in range(10)}

    async def poll(f, name, url):
        try:
            res = await f.fetch(url)
            return parse_feed(res.body, res.headers, url=url, feed_name=name)
        except (FetchError, ParseError) as exc:
            return exc

    async def go():
        async with Fetcher(loopback(timeout=1.5, per_host=64)) as f:
            names = list(hostile) + list(good)
            urls = list(hostile.values()) + list(good.values())
            return dict(zip(names, await asyncio.gather(*(poll(f, n, u) for n, u in zip(names, urls, strict=True))),
                            strict=True))

    results = run(go())
    for name in good:
        assert [i.title for i in results[name].items] == [f"خبر {name[4:]}"]
    errors = {name: (type(r).__name__, r.kind) for name, r in results.items()
              if isinstance(r, (FetchError, ParseError))}
    assert errors["hang"] == ("FetchError", "timeout")
    assert errors["gzip_bomb"] == ("FetchError", "too_large")
    assert errors["xxe"] == ("ParseError", "entities")
    assert errors["html"] == ("ParseError", "not_feed")
    for name in ("ok", "cp1256_declared", "cp1256_undeclared", "utf8_bom_wrong_decl"):
        assert "عاجل" in results[name].items[0].title, name


def test_fetch_page_uses_same_limits(feedfarm):
    url = feedfarm.add("/article.html", b"<html><body><p>x</p></body></html>",
                       headers={"Content-Type": "text/html"})
    async def go():
        async with Fetcher(loopback(max_bytes=1024)) as f:
            ok = await f.fetch_page(url)
            big = feedfarm.add("/big.html", b"x" * 5000, headers={"Content-Type": "text/html"})
            with pytest.raises(FetchError) as info:
                await f.fetch_page(big)
            return ok, info.value
    ok, err = run(go())
    assert ok.status == 200 and b"<p>x</p>" in ok.body
    assert err.kind == "too_large"


def test_settings_forbid_unknown_keys():
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        FetchSettings(timeuot=3)


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=5000), cuts=st.lists(st.integers(0, 5000), max_size=6),
       coding=st.sampled_from(["gzip", "deflate"]))
def test_bounded_inflater_matches_zlib_in_any_chunking(data, cuts, coding):
    packed = gzip.compress(data) if coding == "gzip" else zlib.compress(data)
    points = sorted({min(c, len(packed)) for c in cuts} | {0, len(packed)})
    inflater = _BoundedInflater(coding, 10_000, "u")
    out = b"".join(inflater.feed(packed[a:b]) for a, b in zip(points, points[1:], strict=False)) + inflater.finish()
    assert out == data


@settings(max_examples=30, deadline=None)
@given(size=st.integers(1, 200_000), limit=st.integers(1, 100_000))
def test_bounded_inflater_never_exceeds_limit(size, limit):
    inflater = _BoundedInflater("gzip", limit, "u")
    packed = gzip.compress(b"a" * size)
    if size > limit:
        with pytest.raises(FetchError) as info:
            inflater.feed(packed)
        assert info.value.kind == "too_large"
    else:
        assert inflater.feed(packed) + inflater.finish() == b"a" * size
