"""The generic channel: any other service through Apprise's public API, against a real loopback webhook.

The issue's reproduction: ten alerts on one channel whose server refuses one
message with a temporary error forever (HTTP 500 for that body). Apprise says
only "failed" (reason ``unknown``); the other nine must still arrive, and the
refused one goes dead by its give-up rule. Nothing of Apprise is patched and
its logger is left as it was.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fake_telegram import VirtualClock
from test_deliver_state_errors import queue_bulletins

from monitor.alerts.deliver import Deliverer
from monitor.alerts.route import plan_alerts
from monitor.alerts.settings import ChannelSettings, RoutingSettings
from monitor.rules import RuleMatch
from monitor.state import open_state
from monitor.state.alerts import recent
from monitor.stories.index import StoryIndex
from monitor.types import Item

PLACES = ["الرقة", "الحسكة", "الميادين", "الشدادي", "البصيرة", "هجين", "القامشلي", "منبج", "الطبقة", "تدمر"]


class Webhook:
    """A JSON webhook that keeps what it accepted and answers 500 to bodies naming ``refuse``."""

    def __init__(self) -> None:
        self.accepted: list[dict] = []
        self.refused = 0
        self.refuse: str | None = None
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                if hook.refuse and hook.refuse in body.get("message", ""):
                    hook.refused += 1
                    self.send_response(500)
                else:
                    hook.accepted.append(body)
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.server.server_address[1]}/hook"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook():
    server = Webhook()
    yield server
    server.stop()


def test_one_message_refused_forever_goes_dead_and_the_other_nine_arrive(tmp_path, hook):
    hook.refuse = PLACES[3]
    clock = VirtualClock()
    conn = open_state(tmp_path / "s.db")
    ch = {"hook": ChannelSettings(url=hook.url, backoff_initial=5, backoff_max=60,
                                  give_up={"unknown": {"attempts": 4, "deadline": "1h"}})}
    queue_bulletins(conn, PLACES, ch)
    apprise_logger = logging.getLogger("apprise")
    level, filters = apprise_logger.level, list(apprise_logger.filters)
    report = asyncio.run(Deliverer(conn, ch, clock=clock.time, sleep=clock.sleep).drain(timeout=3600))
    got = [next(p for p in PLACES if p in body["message"]) for body in hook.accepted]
    assert got == [p for p in PLACES if p != PLACES[3]]
    assert report.sent == 9 and report.dead == 1 and hook.refused == 4
    (dead,) = [d for a in recent(conn) for d in a.deliveries if d.state == "dead"]
    assert dead.reason == "unknown" and "Apprise" in dead.last_error
    assert (apprise_logger.level, apprise_logger.filters) == (level, filters)  # no tap, no forced DEBUG


def test_a_webhook_down_as_a_whole_keeps_order(tmp_path, hook):
    clock = VirtualClock()
    conn = open_state(tmp_path / "s.db")
    ch = {"hook": ChannelSettings(url=hook.url, backoff_initial=5, backoff_max=60,
                                  give_up={"unknown": {"attempts": 1, "deadline": 0}})}
    idx = StoryIndex()
    for n, place in enumerate(PLACES[:4]):
        item = Item(f"outlet{n}", f"guid:{n}", f"قسد تتقدم في {place}", f"تفاصيل عن {place}")
        with conn.transaction():
            plan_alerts(conn, item, idx.assign(conn, item, 1000.0 + n),
                        [RuleMatch("sdf", "SDF", "", "info", (), None, ())], ch, RoutingSettings(), 1000.0 + n)
    hook.refuse = "قسد"   # every message
    first = asyncio.run(Deliverer(conn, ch, clock=clock.time, sleep=clock.sleep).drain(timeout=600))
    assert first.dead == 0 and first.sent == 0  # nothing delivered at all: no message is blamed
    hook.refuse = None
    second = asyncio.run(Deliverer(conn, ch, clock=clock.time, sleep=clock.sleep).drain(timeout=600))
    assert second.sent == 4
    assert [next(p for p in PLACES if p in b["message"]) for b in hook.accepted] == PLACES[:4]
