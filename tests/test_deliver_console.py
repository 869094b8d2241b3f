"""Deliverer over console://: prints the rendered alert, marks sent, sends nothing twice."""

from __future__ import annotations

import asyncio
import io

from monitor.dedup import StoryIndex
from monitor.deliver import ChannelSettings, Deliverer
from monitor.models import Item
from monitor.outbox import list_alerts, recover_inflight, retry_dead
from monitor.route import RoutingSettings, plan_alerts
from monitor.rules import Hit, RuleMatch
from monitor.store import open_state, transaction

PLACES = ["نص الخبر عن قسد في دير الزور", "الرقة", "البوكمال والميادين", "الحسكة"]
TITLE = "قسد تسيطر على حقل العمر قرب F-16 و 3,000 مقاتل"


def seed(conn, n=1, now=1000.0):
    idx = StoryIndex()
    ch = {"out": ChannelSettings(url="console://")}
    for i in range(n):
        item = Item("outlet", f"guid:{i}", TITLE if i == 0 else f"قسد في خبر رقم {i} {'جديد ' * i}",
                    PLACES[i % len(PLACES)] + f" {i}", link=f"https://example.org/{i}")
        hit = Hit("qasad", "قسد", "title", 0, 3, "قسد")
        with transaction(conn):
            story = idx.assign(conn, item, now)
            plan_alerts(conn, item, story, [RuleMatch("qasad", "قوات سوريا الديمقراطية", "", "info", (), None, (hit,))],
                        ch, RoutingSettings(), now)
    return ch


def test_console_drain_prints_once_and_marks_sent(tmp_path):
    conn = open_state(tmp_path / "s.db")
    ch = seed(conn, 3)
    out = io.StringIO()
    d = Deliverer(conn, ch, console=out)
    report = asyncio.run(d.drain(timeout=5))
    assert (report.sent, report.failed, report.dead, report.pending) == (3, 0, 0, 0)
    text = out.getvalue()
    assert text.count("قوات سوريا الديمقراطية") == 3
    assert "«قسد»" in text and "https://example.org/1" in text
    assert "\u2068F-16 و 3,000\u2069" in text or "\u2068F-16\u2069" in text
    again = asyncio.run(Deliverer(conn, ch, console=io.StringIO()).drain(timeout=5))
    assert again.sent == 0
    assert all(d["state"] == "sent" for a in list_alerts(conn) for d in a["deliveries"])


def test_inflight_after_crash_is_resent_marked_repeat(tmp_path):
    conn = open_state(tmp_path / "s.db")
    ch = seed(conn, 1)
    conn.execute("UPDATE outbox SET state='sending', attempts=1")  # what a kill -9 mid-send leaves
    out = io.StringIO()
    assert asyncio.run(Deliverer(conn, ch, console=out).drain(timeout=5)).sent == 1
    assert "مكررة" in out.getvalue()
    assert conn.execute("SELECT possible_repeat FROM outbox").fetchone()[0] == 1
    assert recover_inflight(conn) == 0


def test_retry_dead_requeues_only_dead(tmp_path):
    conn = open_state(tmp_path / "s.db")
    seed(conn, 1)
    oid = conn.execute("SELECT id FROM outbox").fetchone()[0]
    assert retry_dead(conn, oid) is False
    conn.execute("UPDATE outbox SET state='dead', attempts=5, last_error='HTTP 401'")
    assert list_alerts(conn)[0]["deliveries"][0]["last_error"] == "HTTP 401"
    assert retry_dead(conn, oid) is True
    assert conn.execute("SELECT state, attempts FROM outbox").fetchone()[:] == ("pending", 0)


def test_run_stops_on_event_and_wake_delivers_new_rows(tmp_path):
    conn = open_state(tmp_path / "s.db")
    out = io.StringIO()
    ch = {"out": ChannelSettings(url="console://")}
    d = Deliverer(conn, ch, console=out)

    async def scenario():
        stop = asyncio.Event()
        task = asyncio.create_task(d.run(stop))
        await asyncio.sleep(0.05)
        seed(conn, 2, now=d.clock())
        d.wake()
        for _ in range(100):
            if out.getvalue().count("🔔") == 2:
                break
            await asyncio.sleep(0.02)
        stop.set()
        await asyncio.wait_for(task, 5)

    asyncio.run(scenario())
    assert out.getvalue().count("🔔") == 2
    assert conn.execute("SELECT count(*) FROM outbox WHERE state='sent'").fetchone()[0] == 2
