"""allow_private_addresses=False: the check applies to the address actually connected to.

A separate "resolve, check, then let httpx resolve again" design can be fooled
by DNS rebinding (public answer for the check, 127.0.0.1 for the connect). The
fetcher resolves once, inside the connect, and connects to the checked IP.
These tests inject the resolver (no real DNS) and treat 127.0.0.1 as "public"
where a real loopback server has to be reached.
"""

from __future__ import annotations

import asyncio
import sys

import pytest
from feedfarm import rss

from monitor.errors import FetchError
from monitor.feeds.fetch import Fetcher, PublicAddressBackend
from monitor.feeds.settings import FetchSettings


class Resolver:
    """A fake DNS: a list of answers per name, served in turn (the last one repeats)."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        turns = self.answers[host]
        return turns[min(self.calls.count(host) - 1, len(turns) - 1)]


def loopback_is_public(address: str) -> bool:
    return address == "127.0.0.1"


async def fetch(url: str, backend, settings: FetchSettings | None = None):
    async with Fetcher(settings or FetchSettings(timeout=5), network_backend=backend) as f:
        return await f.fetch(url)


def test_connects_to_the_checked_address_and_keeps_the_host_header(feedfarm):
    seen_hosts = []

    def handler(h, route):
        seen_hosts.append(h.headers.get("Host"))
        h._send(200, rss().encode(), {})

    feedfarm.add("/g.xml", handler=handler)
    resolver = Resolver({"feeds.test": [["127.0.0.1"]]})
    result = asyncio.run(fetch(f"http://feeds.test:{feedfarm.port}/g.xml",
                               PublicAddressBackend(allowed=loopback_is_public, resolve=resolver)))
    assert result.status == 200 and b"<rss" in result.body
    assert seen_hosts == [f"feeds.test:{feedfarm.port}"]
    assert resolver.calls == ["feeds.test"]  # one resolution, used for both the check and the connect


def test_rebinding_answer_at_connect_time_is_refused(feedfarm):
    # First answer "public" (what a separate pre-check would have seen), then loopback.
    # Only one resolution happens, at connect time, and it decides.
    feedfarm.add("/r.xml", rss().encode())
    resolver = Resolver({"rebind.test": [["10.1.2.3"]]})
    with pytest.raises(FetchError) as info:
        asyncio.run(fetch(f"http://rebind.test:{feedfarm.port}/r.xml",
                          PublicAddressBackend(allowed=loopback_is_public, resolve=resolver)))
    assert info.value.kind == "forbidden_target" and "10.1.2.3" in info.value.message
    assert feedfarm.hits("/r.xml") == 0


def test_any_private_answer_refuses_the_host(feedfarm):
    feedfarm.add("/m.xml", rss().encode())
    resolver = Resolver({"mixed.test": [["127.0.0.1", "192.168.1.10"]]})
    with pytest.raises(FetchError) as info:
        asyncio.run(fetch(f"http://mixed.test:{feedfarm.port}/m.xml",
                          PublicAddressBackend(allowed=loopback_is_public, resolve=resolver)))
    assert info.value.kind == "forbidden_target" and "192.168.1.10" in info.value.message
    assert feedfarm.hits("/m.xml") == 0


def test_redirect_hop_to_a_private_host_is_refused(feedfarm):
    feedfarm.add("/start.xml", status=302, headers={"Location": f"http://inner.test:{feedfarm.port}/secret"})
    feedfarm.add("/secret", rss().encode())
    resolver = Resolver({"feeds.test": [["127.0.0.1"]], "inner.test": [["169.254.169.254"]]})
    with pytest.raises(FetchError) as info:
        asyncio.run(fetch(f"http://feeds.test:{feedfarm.port}/start.xml",
                          PublicAddressBackend(allowed=loopback_is_public, resolve=resolver)))
    assert info.value.kind == "forbidden_target"
    assert feedfarm.hits("/start.xml") == 1 and feedfarm.hits("/secret") == 0


def test_default_guard_refuses_loopback_by_name_and_by_literal(feedfarm):
    url = feedfarm.add("/p.xml", rss().encode())
    settings = FetchSettings(timeout=5, allow_private_addresses=False)
    for target in (url, url.replace("127.0.0.1", "localhost")):
        with pytest.raises(FetchError) as info:
            asyncio.run(fetch(target, None, settings))
        assert info.value.kind == "forbidden_target"
    assert feedfarm.hits("/p.xml") == 0


def test_unresolvable_host_is_a_connect_error():
    async def nxdomain(host, port):
        raise OSError("Name or service not known")

    with pytest.raises(FetchError) as info:
        asyncio.run(fetch("http://nx.test/feed", PublicAddressBackend(resolve=nxdomain)))
    assert info.value.kind == "connect" and "nx.test" in info.value.message


def test_failed_sniffio_import_is_recorded_once():
    # httpcore imports sniffio per lock/event; without it installed, each failed
    # import walked sys.path (~1 ms per request). The fetch module records it.
    try:
        import sniffio  # noqa: F401
    except ImportError:
        assert "sniffio" in sys.modules and sys.modules["sniffio"] is None
