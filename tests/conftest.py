"""Shared fixtures: a real SMTP server (aiosmtpd) and helpers to run the real CLI.

Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import email
import email.policy
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import settings

# Property tests must not flake on a loaded 2-core CI machine: no per-example
# deadline, and in CI a fixed seed so a red run can be reproduced exactly.
settings.register_profile("default", deadline=None)
settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")

#: The password the test SMTP server accepts (passed to the CLI as $SMTP_PASSWORD).
SMTP_PASSWORD = "smtp-test-password-7f3a"

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
CORPUS = DATA / "corpus"


@dataclass
class SmtpSink:
    """What the test SMTP server received, parsed as ``EmailMessage``s."""

    host: str
    port: int
    messages: list[EmailMessage] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def mailto(self, to: str = "analyst@example.org") -> str:
        """A channel URL as a user writes it: the password comes from ``${SMTP_PASSWORD}``."""
        return (f"mailto://monitor:${{SMTP_PASSWORD}}@{self.host}:{self.port}"
                f"?mode=insecure&from=monitor@example.org&to={to}")

    def received(self) -> list[EmailMessage]:
        with self.lock:
            return list(self.messages)


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.original_content or envelope.content,
                                           policy=email.policy.default)
        with self.sink.lock:
            self.sink.messages.append(message)
        return "250 OK"


class _AcceptAll:
    """Authenticator that takes any login (the tests check delivery, not passwords)."""

    def __call__(self, server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult

        return AuthResult(success=True)


@pytest.fixture
def smtp_server():
    """A real aiosmtpd server on 127.0.0.1 that keeps every message it receives."""
    from aiosmtpd.controller import Controller

    sink = SmtpSink("127.0.0.1", free_port())
    controller = Controller(_Handler(sink), hostname="127.0.0.1", port=sink.port, authenticator=_AcceptAll(),
                            auth_require_tls=False, auth_required=False)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_cli(*args: str, env: dict | None = None, timeout: float = 120, cwd: Path | None = None
            ) -> subprocess.CompletedProcess:
    """Run ``python -m monitor ARGS`` as a real process and capture its output."""
    full_env = {**os.environ, "SMTP_PASSWORD": SMTP_PASSWORD, **(env or {})}
    full_env.pop("NOTIFY_SOCKET", None)
    return subprocess.run([sys.executable, "-m", "monitor", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout, cwd=cwd or ROOT)


def corpus_articles() -> list[tuple[str, str]]:
    """The five corpus articles as (file stem, text)."""
    return [(p.stem, p.read_text(encoding="utf-8")) for p in sorted(CORPUS.glob("0*.txt"))]


class FeedServer:
    """A real HTTP server on 127.0.0.1 serving feeds the test sets and changes.

    ``set(path, body, ...)`` (re)defines a route; 200 answers carry an ETag
    and honour If-None-Match with 304, as real feed servers do. ``hang=True``
    never answers (a timing-out feed), ``delay`` answers that many seconds
    late. ``hits[path]`` counts requests.
    """

    def __init__(self) -> None:
        import http.server

        self.routes: dict[str, dict] = {}
        self.hits: dict[str, int] = {}
        self._stop = threading.Event()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                owner.hits[self.path] = owner.hits.get(self.path, 0) + 1
                route = owner.routes.get(self.path)
                if route is None:
                    self._send(404, b"not found", {"Content-Type": "text/plain"})
                    return
                if route["hang"]:
                    owner._stop.wait(30)
                    return
                if route["delay"]:
                    owner._stop.wait(route["delay"])
                body: bytes = route["body"]
                etag = '"%x"' % (hash(body) & 0xFFFFFFFF)
                if route["status"] == 200 and self.headers.get("If-None-Match") == etag:
                    self._send(304, b"", {"ETag": etag})
                    return
                headers = {"Content-Type": route["content_type"], **route["headers"]}
                if route["status"] == 200:
                    headers["ETag"] = etag
                self._send(route["status"], body, headers)

            def _send(self, status, body, headers):
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if body:
                    self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path

    def set(self, path: str, body: bytes | str = b"", *, status: int = 200, headers: dict | None = None,
            content_type: str = "application/rss+xml; charset=utf-8", hang: bool = False,
            delay: float = 0.0) -> str:
        if isinstance(body, str):
            body = body.encode("utf-8")
        self.routes[path] = {"body": body, "status": status, "headers": headers or {},
                             "content_type": content_type, "hang": hang, "delay": delay}
        return self.url(path)

    def __enter__(self) -> FeedServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def feed_server():
    with FeedServer() as server:
        yield server


def rss_feed(items: list[dict], *, title: str = "موقع إخباري") -> str:
    """An RSS 2.0 document; each item dict has title, link, and description (plain text)."""
    from xml.sax.saxutils import escape

    body = "".join(
        f"<item><title>{escape(i['title'])}</title><link>{escape(i['link'])}</link>"
        f"<guid>{escape(i.get('guid', i['link']))}</guid>"
        f"<pubDate>{i.get('date', 'Mon, 23 Oct 2017 08:00:00 +0300')}</pubDate>"
        f"<description>{escape(i.get('description', ''))}</description></item>"
        for i in items
    )
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{escape(title)}</title>'
            f"<link>https://news.example/</link><description>x</description>{body}</channel></rss>")


class NotifyListener:
    """A fake systemd: binds NOTIFY_SOCKET and records (monotonic time, {key: value}) per datagram."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except (TimeoutError, BlockingIOError):
                continue
            except OSError:
                return
            now = time.monotonic()
            fields = dict(line.split("=", 1) for line in data.decode("utf-8", "replace").splitlines() if "=" in line)
            with self._lock:
                self.messages.append((now, fields))

    def snapshot(self) -> list[tuple[float, dict[str, str]]]:
        with self._lock:
            return list(self.messages)

    def times(self, key: str, value: str | None = None) -> list[float]:
        return [t for t, f in self.snapshot() if key in f and (value is None or f[key] == value)]

    def values(self, key: str) -> list[str]:
        return [f[key] for _, f in self.snapshot() if key in f]

    def wait_for(self, key: str, value: str | None = None, timeout: float = 30.0, after: float = 0.0) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hits = [t for t in self.times(key, value) if t >= after]
            if hits:
                return hits[0]
            time.sleep(0.05)
        raise AssertionError(f"no {key}={value or '*'} within {timeout:.0f}s; got {self.snapshot()[-10:]}")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def notify():
    """A fake systemd NOTIFY_SOCKET (AF_UNIX datagrams) read in a thread."""
    # AF_UNIX paths are limited to ~107 bytes: pytest's tmp_path can be longer.
    short = Path(f"/tmp/mon-notify-{os.getpid()}-{time.monotonic_ns()}.sock")
    listener = NotifyListener(short)
    try:
        yield listener
    finally:
        listener.close()
        short.unlink(missing_ok=True)


@pytest.fixture
def restore_logging():
    """Undo what ``monitor.service.logs.setup_logging`` did to the process-wide logging state."""
    from monitor import secrets
    from monitor.service import logs
    from monitor.service.logs import RedactionFilter

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    for h in handlers:
        h.filters = [f for f in h.filters if not isinstance(f, RedactionFilter)]
    root.setLevel(level)
    for name in logs.CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET)
    logging.captureWarnings(False)
    secrets.use_source(secrets.no_secrets)


# -- state backends ----------------------------------------------------------------
# The state-layer tests run against both backends: SQLite (a file in tmp_path) and
# a real PostgreSQL server that this session starts once (tests/pgserver.py), one
# fresh database per test.

@pytest.fixture(scope="session")
def postgres_server():
    from pgserver import PostgresServer, find_binaries

    binaries = find_binaries()
    if binaries is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL server binaries not found: `make test` installs Debian's postgresql package")
        pytest.skip("PostgreSQL server binaries not found (Debian package postgresql); `make test` installs it")
    server = PostgresServer(binaries).start()
    yield server
    server.stop()


_DATABASES = iter(range(1, 1_000_000))


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """A new, empty database on the session's PostgreSQL server."""
    return postgres_server.create_database(f"t{next(_DATABASES)}_{os.getpid()}")


@pytest.fixture(params=["sqlite", "postgresql"])
def state_target(request, tmp_path) -> str | Path:
    """Where a state-layer test keeps its state: a SQLite file, or a PostgreSQL database URL."""
    if request.param == "sqlite":
        return tmp_path / "state.sqlite3"
    return request.getfixturevalue("postgres_url")
