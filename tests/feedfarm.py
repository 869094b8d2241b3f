"""A loopback HTTP "feed farm" for tests: good feeds and hostile ones on 127.0.0.1.

Reusable by any test (the end-to-end tests serve their good feeds from it)::

    from feedfarm import FeedFarm, feedfarm      # the fixture, or:
    with FeedFarm() as farm:
        url = farm.add("/news.xml", rss_bytes, headers={"ETag": '"v1"'})
        farm.add("/news.xml", newer_bytes, etag='"v2"')   # replace later
        farm.hits("/news.xml")                             # requests served
        farm.add_hostile_routes()                          # see HOSTILE below

Routes answer with fixed bytes/headers/status, honouring ETag and
If-Modified-Since with 304 when given ``etag=``/``last_modified=``; or with a
handler function ``fn(request_handler, route)`` for behaviour over time (hang,
drip, streamed 50 MB). Only ever binds 127.0.0.1 on a random port.
"""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

RSS_TYPE = "application/rss+xml; charset=utf-8"


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None
    handler: Callable[[_Handler, Route], None] | None = None
    delay: float = 0.0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        farm = self.server.farm
        path = self.path.split("?", 1)[0]
        route = farm._route(path)
        if route is None:
            self._send(404, b"not found", {"Content-Type": "text/plain"})
            return
        if route.delay:
            time.sleep(route.delay)
        if route.handler is not None:
            route.handler(self, route)
            return
        if route.status == 200 and self._not_modified(route):
            self.send_response(304)
            if route.etag:
                self.send_header("ETag", route.etag)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        headers = dict(route.headers)
        if route.etag:
            headers.setdefault("ETag", route.etag)
        if route.last_modified:
            headers.setdefault("Last-Modified", route.last_modified)
        self._send(route.status, route.body, headers)

    def _not_modified(self, route: Route) -> bool:
        inm = self.headers.get("If-None-Match")
        if route.etag and inm:
            return route.etag in [t.strip() for t in inm.split(",")] or inm.strip() == "*"
        ims = self.headers.get("If-Modified-Since")
        if route.last_modified and ims:
            try:
                return parsedate_to_datetime(ims) >= parsedate_to_datetime(route.last_modified)
            except (TypeError, ValueError):
                return False
        return False

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        lower = {k.lower() for k in headers}
        for name, value in headers.items():
            self.send_header(name, value)
        if "content-type" not in lower:
            self.send_header("Content-Type", RSS_TYPE)
        if "content-length" not in lower:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256
    farm: FeedFarm

    def handle_error(self, request, client_address) -> None:
        # Clients hanging up on hostile routes is the point of those routes.
        pass


class FeedFarm:
    """Threaded HTTP server on 127.0.0.1 with replaceable routes and per-route hit counts."""

    def __init__(self) -> None:
        self._routes: dict[str, Route] = {}
        self._hits: dict[str, int] = {}
        self._lock = threading.Lock()
        self.stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # lifecycle
    def start(self) -> FeedFarm:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.farm = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="feedfarm", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FeedFarm:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "farm not started"
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    # routes
    def add(self, path: str, body: bytes = b"", *, status: int = 200, headers: dict[str, str] | None = None,
            etag: str | None = None, last_modified: str | None = None,
            handler: Callable[[_Handler, Route], None] | None = None, delay: float = 0.0) -> str:
        """Register (or replace) a route; returns its full URL. ``last_modified`` may be True for 'now'."""
        if last_modified is True:
            last_modified = formatdate(usegmt=True)
        with self._lock:
            self._routes[path] = Route(body, status, dict(headers or {}), etag, last_modified, handler, delay)
            self._hits.setdefault(path, 0)
        return self.url(path)

    replace = add

    def remove(self, path: str) -> None:
        with self._lock:
            self._routes.pop(path, None)

    def hits(self, path: str) -> int:
        with self._lock:
            return self._hits.get(path, 0)

    def reset_hits(self) -> None:
        with self._lock:
            for key in self._hits:
                self._hits[key] = 0

    def _route(self, path: str) -> Route | None:
        with self._lock:
            self._hits[path] = self._hits.get(path, 0) + 1
            return self._routes.get(path)

    def add_hostile_routes(self) -> dict[str, str]:
        """Register every case of ``HOSTILE``; returns {name: url}."""
        return {name: self.add(f"/hostile/{name}", **make()) for name, make in HOSTILE.items()}


# --------------------------------------------------------------------------- feed builders

def rss(items: list[tuple[str, str, str]] | None = None, *, title: str = "أخبار", encoding: str | None = "utf-8",
        declare: bool = True, ttl: int | None = None, extra_prolog: str = "") -> str:
    """A small RSS 2.0 document as text. ``items`` are (title, link, description)."""
    items = items if items is not None else [
        ("عاجل: قسد تسيطر على حقل العمر", "https://example.com/a/1", "اشتباكات في دير الزور"),
        ("البوكمال: معارك عنيفة", "https://example.com/a/2", "تقدم للقوات قرب الحدود"),
    ]
    parts = []
    if declare:
        parts.append(f'<?xml version="1.0" encoding="{encoding}"?>' if encoding else '<?xml version="1.0"?>')
    parts.append(extra_prolog)
    parts.append('<rss version="2.0"><channel>')
    parts.append(f"<title>{title}</title><link>https://example.com/</link><description>d</description>")
    if ttl is not None:
        parts.append(f"<ttl>{ttl}</ttl>")
    for i, (t, link, desc) in enumerate(items):
        parts.append(f"<item><title>{t}</title><link>{link}</link><description>{desc}</description>"
                     f"<guid isPermaLink=\"false\">id-{i}-{link}</guid>"
                     f"<pubDate>Mon, 06 Nov 2017 1{i % 10}:00:00 GMT</pubDate></item>")
    parts.append("</channel></rss>")
    return "".join(parts)


@cache
def gzip_bomb(decoded_mib: int = 64) -> bytes:
    """One gzip member of ``decoded_mib`` MiB of zeros (about 1 KB per MiB on the wire)."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"\0" * (1 << 20)
    out = [comp.compress(block) for _ in range(decoded_mib)]
    out.append(comp.flush())
    return b"".join(out)


def _hang(handler: _Handler, route: Route) -> None:
    handler.server.farm.stopping.wait(60)


def _drip(handler: _Handler, route: Route) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", RSS_TYPE)
    handler.send_header("Content-Length", "100000")
    handler.end_headers()
    for _ in range(600):
        if handler.server.farm.stopping.wait(0.1):
            return
        try:
            handler.wfile.write(b"<!-- drip -->")
            handler.wfile.flush()
        except OSError:
            return


def _redirect_to_self(handler: _Handler, route: Route) -> None:
    handler._send(302, b"", {"Location": handler.path, "Content-Type": "text/plain"})


def _stream_huge(handler: _Handler, route: Route) -> None:
    """50 MB of valid-looking RSS, streamed chunked so the farm never holds it."""
    handler.send_response(200)
    handler.send_header("Content-Type", RSS_TYPE)
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    item = ("<item><title>عاجل خبر</title><link>https://example.com/x</link></item>" * 100).encode()
    sent = 0
    try:
        for chunk in [b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>']:
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        while sent < 50 * 1024 * 1024 and not handler.server.farm.stopping.is_set():
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(item), item))
            sent += len(item)
        handler.wfile.write(b"0\r\n\r\n")
    except OSError:
        pass


def _lying_length(handler: _Handler, route: Route) -> None:
    body = rss().encode()
    handler.send_response(200)
    handler.send_header("Content-Type", RSS_TYPE)
    handler.send_header("Content-Length", "100")
    handler.end_headers()
    try:
        handler.wfile.write(body + b"x" * 1_000_000)
    except OSError:
        pass
    handler.close_connection = True


def _billion_laughs() -> bytes:
    ents = ['<!ENTITY lol "lol">'] + [f'<!ENTITY lol{i} "{(f"&lol{i - 1};" if i > 1 else "&lol;") * 10}">'
                                     for i in range(1, 10)]
    prolog = "<!DOCTYPE rss [" + "".join(ents) + "]>"
    return rss([("&lol9;", "https://example.com/a", "x")], extra_prolog=prolog).encode()


def _text_amplification(encoding: str = "utf-8") -> bytes:
    payload = "A" * 10_000
    prolog = f'<!DOCTYPE rss [<!ENTITY big "{payload}">]>'
    doc = rss([("&big;" * 3_000, "https://example.com/a", "x")], extra_prolog=prolog, encoding=encoding)
    return doc.encode(encoding)


def _xxe() -> bytes:
    prolog = '<!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    return rss([("leak &xxe;", "https://example.com/a", "&xxe;")], extra_prolog=prolog).encode()


ARABIC_ITEMS = [
    ("عاجل: قسد تسيطر على حقل العمر", "https://example.com/a/1", "اشتباكات في دير الزور"),
    ("البوكمال: معارك عنيفة", "https://example.com/a/2", "تقدم للقوات قرب الحدود"),
]

HOSTILE: dict[str, Callable[[], dict]] = {
    "ok": lambda: dict(body=rss().encode(), etag='"v1"'),
    "not_found": lambda: dict(body=b"nope", status=404),
    "server_error": lambda: dict(body=b"oops", status=500),
    "rate_limited": lambda: dict(body=b"slow down", status=429, headers={"Retry-After": "120"}),
    "unavailable_date": lambda: dict(body=b"", status=503,
                                     headers={"Retry-After": formatdate(time.time() + 3600, usegmt=True)}),
    "hang": lambda: dict(handler=_hang),
    "drip": lambda: dict(handler=_drip),
    "redirect_loop": lambda: dict(handler=_redirect_to_self),
    "redirect_file": lambda: dict(status=302, headers={"Location": "file:///etc/passwd"}),
    "gzip_bomb": lambda: dict(body=gzip_bomb(), headers={"Content-Encoding": "gzip"}),
    "gzip_gzip": lambda: dict(body=gzip.compress(gzip_bomb(), 9),
                              headers={"Content-Encoding": "gzip, gzip"}),
    "brotli": lambda: dict(body=b"\x1b\x00", headers={"Content-Encoding": "br"}),
    "billion_laughs": lambda: dict(body=_billion_laughs()),
    "entity_amplification": lambda: dict(body=_text_amplification()),
    "entity_amplification_utf16": lambda: dict(body=_text_amplification("utf-16"),
                                               headers={"Content-Type": "application/rss+xml"}),
    "xxe": lambda: dict(body=_xxe()),
    "huge": lambda: dict(handler=_stream_huge),
    "lying_length": lambda: dict(handler=_lying_length),
    "cp1256_declared": lambda: dict(body=rss(encoding="windows-1256").encode("cp1256"),
                                    headers={"Content-Type": "application/rss+xml"}),
    "cp1256_undeclared": lambda: dict(body=rss(ARABIC_ITEMS * 3, encoding=None).encode("cp1256"),
                                      headers={"Content-Type": "application/rss+xml"}),
    "utf8_bom_wrong_decl": lambda: dict(body=b"\xef\xbb\xbf" + rss(encoding="windows-1256").encode("utf-8"),
                                        headers={"Content-Type": "application/rss+xml"}),
    "html": lambda: dict(body="<!DOCTYPE html><html><head><title>موقع</title></head><body>x</body></html>"
                         .encode(), headers={"Content-Type": "text/html; charset=utf-8"}),
}


@pytest.fixture
def feedfarm() -> Iterator[FeedFarm]:
    """A started farm, stopped after the test."""
    with FeedFarm() as farm:
        yield farm
