"""A delivery loop survives its state database failing: it logs, backs off, retries, and never sends twice.

Another connection holds SQLite's write lock (as another process would) at
the worst moments: before anything is claimed, and between a send and its
'sent' mark. The busy timeout is short so each attempt fails fast; the lock
is let go from the deliverer's own sleep, so nothing depends on timing.
"""

from __future__ import annotations

import asyncio
import io
import sqlite3

from monitor import metrics
from monitor.alerts.deliver import Deliverer
from monitor.alerts.route import plan_alerts
from monitor.alerts.settings import ChannelSettings, RoutingSettings
from monitor.rules import RuleMatch
from monitor.state import connect, open_state
from monitor.stories.index import StoryIndex
from monitor.types import Item

PLACES = ["الرقة", "الحسكة", "الميادين", "الشدادي", "البصيرة"]
CH = {"out": ChannelSettings(url="console://")}


def queue_bulletins(conn, places, channels) -> None:
    """One story per place, each alerted by one rule on ``channels``, one second apart."""
    idx = StoryIndex()
    for n, place in enumerate(places):
        item = Item(f"outlet{n}", f"guid:{n}", f"قسد تتقدم في {place}", f"تفاصيل عن {place}",
                    link=f"https://news.example/{n}")
        with conn.transaction():
            plan_alerts(conn, item, idx.assign(conn, item, 1000.0 + n),
                        [RuleMatch("sdf", "SDF", "", "info", (), None, ())], channels, RoutingSettings(), 1000.0 + n)


def seed(path) -> None:
    conn = open_state(path)
    queue_bulletins(conn, PLACES, CH)
    conn.close()


class Blocker:
    """A second connection to the same file that takes and releases the write lock."""

    def __init__(self, path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, timeout=5)

    def hold(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("COMMIT")


def errors(channel: str) -> float:
    return metrics.REGISTRY.get_sample_value("monitor_delivery_state_errors_total", {"channel": channel}) or 0.0


def test_a_lock_held_between_send_and_mark_never_sends_twice(tmp_path):
    path = tmp_path / "s.db"
    seed(path)
    blocker = Blocker(path)

    class GrabOnThirdWrite(io.StringIO):
        """The console: another process grabs the lock just as the third message is printed."""

        writes = 0

        def write(self, text: str) -> int:
            GrabOnThirdWrite.writes += 1
            if GrabOnThirdWrite.writes == 3:
                blocker.hold()
            return super().write(text)

    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 3:
            blocker.release()
        await asyncio.sleep(0)

    out = GrabOnThirdWrite()
    before = errors("out")
    db = connect(path, timeout=0.05)
    report = asyncio.run(Deliverer(db, CH, console=out, sleep=sleep).drain(timeout=60))
    printed = [line for line in out.getvalue().splitlines() if line.startswith("📰")]
    assert len(printed) == 5 and len(set(printed)) == 5          # every alert once: the third was not resent
    assert report.sent == 5 and report.pending == 0
    assert db.scalar("SELECT count(*) FROM outbox WHERE state != 'sent'") == 0
    assert slept[:3] == [0.5, 1.0, 2.0]                          # backed off while the database was locked
    assert errors("out") - before == 3


def test_a_lock_held_at_start_delays_delivery_and_the_loop_lives_on(tmp_path):
    path = tmp_path / "s.db"
    seed(path)
    blocker = Blocker(path)
    with sqlite3.connect(path) as conn:  # what a kill -9 mid-send leaves
        conn.execute("UPDATE outbox SET state = 'sending' WHERE id = 1")
    blocker.hold()
    out = io.StringIO()
    db = connect(path, timeout=0.05)
    deliverer = Deliverer(db, CH, console=out)

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(deliverer.run(stop))
        for _ in range(40):  # the recovery at start fails while the lock is held...
            await asyncio.sleep(0.02)
            if out.getvalue():
                break
        assert out.getvalue() == "" and not task.done()
        blocker.release()     # ...and goes on once it is free
        for _ in range(500):
            if out.getvalue().count("📰") == 5:
                break
            await asyncio.sleep(0.02)
        blocker.hold()        # locked again while running: the channel's loop backs off, it does not die
        before = errors("out")
        deliverer.wake()
        for _ in range(100):
            await asyncio.sleep(0.02)
            if errors("out") > before:
                break
        assert errors("out") > before and not deliverer._tasks["out"].done()
        assert any("state database failing" in p for p in deliverer.problems())  # /healthz says so
        blocker.release()
        stop.set()
        await asyncio.wait_for(task, 10)

    asyncio.run(scenario())
    assert out.getvalue().count("📰") == 5
    assert "مكررة" in out.getvalue()  # the row left 'sending' went out marked as a possible repeat
    assert db.scalar("SELECT count(*) FROM outbox WHERE state != 'sent'") == 0
