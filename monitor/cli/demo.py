"""``monitor demo``: one real polling cycle over the bundled sample feeds, offline.

The sample feeds (built from the five corpus articles plus items that must
not alert) are served by a small HTTP server on 127.0.0.1 that the demo starts
and stops itself, so the real fetch path runs: conditional GET included (the
second run gets 304s and says nothing new). Alerts go to the ``console://``
channel, i.e. this terminal. The state lives in ``--state-dir``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http.server
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import yaml

from monitor.errors import ConfigError

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "feeds"
PREFERRED_PORT = 58765  # stable, so the state's validators stay valid between runs

FEED_NAMES = {
    "nashra.xml": "النشرة",
    "shamfm.xml": "شام إف إم",
    "enab.xml": "عنب بلدي",
}


def bundled_rules() -> Path:
    """The default rule pack: ``rules/`` of the source tree this package runs from."""
    for candidate in (Path(__file__).resolve().parents[2] / "rules", Path.cwd() / "rules"):
        if candidate.is_dir() and any(candidate.glob("*.y*ml")):
            return candidate
    raise ConfigError("cannot find the default rules folder (run the demo from the project's checkout)",
                      file="rules/")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def guess_type(self, path: str | os.PathLike[str]) -> str:
        return "application/xml"


@contextlib.contextmanager
def serve_directory(directory: Path, port: int = 0) -> Iterator[str]:
    """Serve ``directory`` on 127.0.0.1 (``port`` if free, else any); yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="demo-feeds", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def write_demo_config(state_dir: Path, base_url: str) -> Path:
    """The config the demo runs with, written beside its state so a user can read it."""
    config = {
        "state": "state.sqlite3",
        "rules": [str(bundled_rules())],
        "feeds": [{"name": name, "url": f"{base_url}/{file}", "interval": "10m"}
                  for file, name in FEED_NAMES.items()],
        "channels": {"console": {"url": "console://"}},
        # The sample feeds are served on 127.0.0.1, which a real config refuses by default.
        "fetch": {"allow_private_addresses": True},
        # Their articles are from 2017: a real first poll alerts only for the last day's items.
        "defaults": {"first_poll": "all"},
        "log_level": "WARNING",
    }
    path = state_dir / "demo-config.yaml"
    path.write_text("# Written by `monitor demo`; a real config is in examples/config.yaml\n"
                    + yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def run_demo(state_dir: Path, *, reset: bool = False) -> str:
    """Run one cycle; returns the summary line (alerts are printed as they are delivered)."""
    from monitor.service.daemon import Daemon

    if reset and state_dir.exists():
        shutil.rmtree(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    with serve_directory(SAMPLES, PREFERRED_PORT) as base_url:
        config_path = write_demo_config(state_dir, base_url)
        daemon = Daemon(config_path, journald=False)
        daemon.setup()
        summary = asyncio.run(daemon.run_once())
    return f"demo: {summary.line()}\n(state in {state_dir}/; run again and nothing is re-sent; --reset to start over)"

