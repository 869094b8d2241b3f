"""Telegram end to end: the REAL apprise plugin against a loopback fake Bot API."""

from __future__ import annotations

import asyncio
import logging

import pytest
from apprise.plugins.telegram import NotifyTelegram
from fake_telegram import FakeTelegram, check_html

from monitor.alerts.deliver import Deliverer, send_test_message
from monitor.alerts.route import plan_alerts
from monitor.alerts.settings import ChannelSettings, RoutingSettings
from monitor.errors import DeliveryError
from monitor.rules import Hit, RuleMatch
from monitor.state import open_state
from monitor.stories.index import StoryIndex
from monitor.types import Item

TOKEN = "123456789:AAHsecretTOKENvalue_abcdefghijklmnop"
URL = f"tgram://{TOKEN}/-1001234"
FAST = dict(min_interval=0, per_minute=1000, backoff_initial=0.05, backoff_max=0.2)


@pytest.fixture
def fake(monkeypatch):
    server = FakeTelegram().start()
    monkeypatch.setattr(NotifyTelegram, "notify_url", server.base + "/bot")
    yield server
    server.stop()


def seed(conn, channels, n, long_summary=""):
    idx = StoryIndex()
    for i in range(n):
        title = f"<b>عاجل</b> & قسد {i} تسيطر على موقع رقم {i} في R&D <script>"
        item = Item(f"outlet{i}", f"guid:{i}", title, long_summary or f"تفاصيل الخبر {i} عن قسد",
                    link=f"https://news.example/a?id={i}&x=<1>")
        hit = Hit("qasad", "قسد", "title", title.index("قسد"), title.index("قسد") + 3, "قسد")
        with conn.transaction():
            story = idx.assign(conn, item, 1000.0 + i)
            plan_alerts(conn, item, story, [RuleMatch("qasad", "قسد <SDF>", "", "warning", (), None, (hit,))],
                        channels, RoutingSettings(), 1000.0 + i)


def test_alerts_arrive_once_in_order_through_429_and_5xx(tmp_path, fake, caplog):
    fake.answer_429, fake.retry_after, fake.fail_5xx = 1, 1, 2
    conn = open_state(tmp_path / "s.db")
    ch = {"tg": ChannelSettings(url=URL, **FAST)}
    seed(conn, ch, 6)
    caplog.set_level(logging.DEBUG)
    report = asyncio.run(Deliverer(conn, ch).drain(timeout=30))
    assert report.sent == 6 and report.dead == 0 and report.pending == 0
    texts = fake.messages["-1001234"]
    assert len(texts) == 6
    assert [int(t.split("موقع رقم ")[1].split(" ")[0].strip("\u2068\u2069")) for t in texts] == list(range(6))
    assert all(not check_html(t) for t in texts)
    assert "&lt;\u2068b\u2069&gt;عاجل&lt;/\u2068b\u2069&gt; &amp;" in texts[0] and "<b>قسد</b>" in texts[0]
    assert [s for s, _ in fake.rejected] == [429, 502, 502]  # retry_after obeyed: no early retry
    # apprise's DEBUG lines carry the token; the tap reads them but forwards INFO+ only.
    # (urllib3's own DEBUG line also shows the URL: that is the daemon's redaction filter's job.)
    ours = [r.getMessage() for r in caplog.records if r.name.startswith(("apprise", "monitor"))]
    assert ours and not any(TOKEN.split(":")[1] in m for m in ours)


def test_long_message_is_split_on_safe_boundaries(tmp_path, fake):
    conn = open_state(tmp_path / "s.db")
    ch = {"tg": ChannelSettings(url=URL, **FAST)}
    seed(conn, ch, 1, long_summary=("قسد " + "كلمة & <نص> طويل جدا " * 40 + "\n") * 40)
    conn.execute("UPDATE alerts SET payload = json_set(payload, '$.hits', json('[]'))")
    from monitor.alerts.render import Renderer
    from monitor.state.outbox import load_views
    views = load_views(conn, (1,))
    digest = [{**views[0], "story_id": n, "alert_id": n} for n in range(40)]
    pieces = Renderer().telegram(digest, limit=600)   # a 40-story digest
    assert len(pieces) > 5
    assert all(len(p.encode("utf-16-le")) // 2 <= 600 and not check_html(p) for p in pieces)
    assert sum(p.count("📰") for p in pieces) == 40


def test_unauthorized_goes_dead_after_max_attempts(tmp_path, fake):
    fake.status_always = 401
    conn = open_state(tmp_path / "s.db")
    ch = {"tg": ChannelSettings(url=URL, max_attempts=2, **FAST)}
    seed(conn, ch, 1)
    d = Deliverer(conn, ch)
    report = asyncio.run(d.drain(timeout=10))
    assert report.dead == 1 and report.sent == 0
    row = conn.execute("SELECT state, attempts, last_error FROM outbox").fetchone()
    assert row["state"] == "dead" and row["attempts"] == 2 and "401" in row["last_error"]
    assert TOKEN not in row["last_error"]


def test_one_channel_outage_does_not_delay_another(tmp_path, fake):
    import io
    fake.status_always = 502
    conn = open_state(tmp_path / "s.db")
    out = io.StringIO()
    ch = {"tg": ChannelSettings(url=URL, min_interval=0, backoff_initial=5, backoff_max=5),
          "console": ChannelSettings(url="console://")}
    seed(conn, ch, 3)
    report = asyncio.run(Deliverer(conn, ch, console=out).drain(timeout=1))
    assert out.getvalue().count("📰") == 3
    states = dict(conn.execute("SELECT channel, group_concat(DISTINCT state) FROM outbox GROUP BY channel").fetchall())
    assert states == {"console": "sent", "tg": "pending"}
    assert report.sent == 3 and report.pending == 3


def test_send_test_message(fake):
    asyncio.run(send_test_message("tg", ChannelSettings(url=URL)))
    assert len(fake.messages["-1001234"]) == 1
    fake.status_always = 401
    with pytest.raises(DeliveryError) as err:
        asyncio.run(send_test_message("tg", ChannelSettings(url=URL)))
    assert not err.value.retryable
