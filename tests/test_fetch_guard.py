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


# -- with the defaults, a feed cannot make the monitor fetch its own network (issue 17) --------

def test_article_pages_on_private_addresses_are_never_fetched_directly_or_by_redirect(tmp_path, feedfarm):
    """A public feed (127.0.0.2, treated as public here) whose full_text items link to an
    internal page (127.0.0.1), once directly and once through a redirect: neither page is
    fetched, its text is in no alert, and the items still alert on their headlines."""
    import http.server
    import threading

    import yaml
    from conftest import ROOT, rss_feed

    from monitor.config import load_config
    from monitor.ingest.analysis import AnalysisContext
    from monitor.ingest.pipeline import Pipeline
    from monitor.ingest.workers import WorkerPool
    from monitor.rules import load_rules
    from monitor.state import open_state
    from monitor.stories.index import StoryIndex

    secret = "نص داخلي سري لا يخرج"
    feedfarm.add("/internal", f"<html><body><p>{secret} البوكمال</p></body></html>".encode(),
                 headers={"Content-Type": "text/html; charset=utf-8"})
    internal = f"http://127.0.0.1:{feedfarm.port}/internal"
    routes: dict[str, tuple[int, dict[str, str], bytes]] = {}

    class Public(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            status, headers, body = routes[self.path]
            self.send_response(status)
            for key, value in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.2", 0), Public)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    public = f"http://127.0.0.2:{server.server_address[1]}"
    routes["/hop"] = (302, {"Location": internal}, b"")
    routes["/feed.xml"] = (200, {"Content-Type": "application/rss+xml"}, rss_feed([
        {"title": "قسد تتقدم نحو البوكمال", "link": internal, "guid": "direct"},
        {"title": "قسد تتقدم نحو البوكمال من الشمال", "link": f"{public}/hop", "guid": "redirected"},
    ]).encode())
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump({  # the defaults: allow_private_addresses is false
        "state_path": str(tmp_path / "state.sqlite3"), "rules": [str(ROOT / "rules")],
        "feeds": [{"name": "f", "url": f"{public}/feed.xml", "full_text": True}],
        "channels": {"console": {"url": "console://"}}}), encoding="utf-8")
    config = load_config(config_path, environ={})
    assert config.model.fetch.allow_private_addresses is False
    db = open_state(config.state)
    stories = StoryIndex(config.model.dedup)
    stories.load(db, 0)
    workers = WorkerPool(0)
    context = AnalysisContext(load_rules(config.rules), stories.settings, stories.permutations)

    async def go():
        backend = PublicAddressBackend(allowed=lambda address: address == "127.0.0.2")
        async with Fetcher(config.model.fetch, network_backend=backend) as fetcher:
            pipeline = Pipeline(config, db, context, fetcher, stories, workers)
            return await pipeline.poll(config.feeds[0])

    try:
        outcome = asyncio.run(go())
        payloads = [row["payload"] for row in db.all("SELECT payload FROM alerts")]
    finally:
        db.close()
        workers.close()
        server.shutdown()
        server.server_close()
    assert outcome.status == "ok" and outcome.items == 2
    assert feedfarm.hits("/internal") == 0, "the internal page was fetched"
    assert payloads and not [p for p in payloads if secret in p]
