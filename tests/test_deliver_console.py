"""Deliverer over console://: prints the rendered alert, marks sent, sends nothing twice."""

from __future__ import annotations

import asyncio
import io

from monitor.alerts.deliver import Deliverer
from monitor.alerts.route import plan_alerts
from monitor.alerts.settings import ChannelSettings, RoutingSettings
from monitor.rules import Hit, RuleMatch
from monitor.state import open_state
from monitor.state.alerts import recent as list_alerts
from monitor.state.outbox import recover_inflight, retry_dead
from monitor.stories.index import StoryIndex
from monitor.types import Item

PLACES = ["نص الخبر عن قسد في دير الزور", "الرقة", "البوكمال والميادين", "الحسكة"]
TITLE = "قسد تسيطر على حقل العمر قرب F-16 و 3,000 مقاتل"


def seed(conn, n=1, now=1000.0):
    idx = StoryIndex()
    ch = {"out": ChannelSettings(url="console://")}
    for i in range(n):
        item = Item("outlet", f"guid:{i}", TITLE if i == 0 else f"قسد في خبر رقم {i} {'جديد ' * i}",
                    PLACES[i % len(PLACES)] + f" {i}", link=f"https://example.org/{i}")
        hit = Hit("qasad", "قسد", "title", 0, 3, "قسد")
        with conn.transaction():
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
    assert "🏷  قسد\n" in text and "https://example.org/1" in text
    assert "\u2068F-16 و 3,000\u2069" in text or "\u2068F-16\u2069" in text
    assert report.messages == 3 and text.count("📰") == 3
    again = asyncio.run(Deliverer(conn, ch, console=io.StringIO()).drain(timeout=5))
    assert again.sent == 0
    assert all(d.state == "sent" for a in list_alerts(conn) for d in a.deliveries)


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
    assert list_alerts(conn)[0].deliveries[0].last_error == "HTTP 401"
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
            if out.getvalue().count("📰") == 2:
                break
            await asyncio.sleep(0.02)
        stop.set()
        await asyncio.wait_for(task, 5)

    asyncio.run(scenario())
    assert out.getvalue().count("📰") == 2
    assert conn.execute("SELECT count(*) FROM outbox WHERE state='sent'").fetchone()[0] == 2


# -- one message per story per channel ----------------------------------------

BODY = "أعلنت قسد أنها تقدمت نحو والبوكمال، وقالت قوات سوريا الديمقراطية إن المعارك مستمرة قرب البوكمال"


def _hits(text):
    """Hits as the matcher reports them: alias without clitics, surface text with them."""
    out = []
    for entity, alias, surface in (("qasad", "قسد", "قسد"), ("bukamal", "البوكمال", "والبوكمال"),
                                   ("qasad", "قوات سوريا الديمقراطية", "قوات سوريا الديمقراطية"),
                                   ("bukamal", "البوكمال", "البوكمال")):
        start = text.index(surface, out[-1].end if out and out[-1].alias == alias else 0)
        out.append(Hit(entity, alias, "body", start, start + len(surface), surface))
    return tuple(out)


def _rule(rule_id, severity, channels=(), hits=None):
    return RuleMatch(rule_id, f"قاعدة {rule_id}", "", severity, tuple(channels), None, hits or _hits(BODY))


def _plan(conn, idx, item, matches, channels, now=1000.0):
    with conn.transaction():
        story = idx.assign(conn, item, now)
        return plan_alerts(conn, item, story, matches, channels, RoutingSettings(), now)


def test_rules_of_one_story_go_out_as_one_message_per_channel(tmp_path):
    conn = open_state(tmp_path / "s.db")
    out = io.StringIO()
    ch = {"out": ChannelSettings(url="console://"),
          "loud": ChannelSettings(url="console://", min_severity="warning")}
    idx = StoryIndex()
    item = Item("outlet", "guid:1", "عنوان الخبر عن المعارك", BODY, link="https://example.org/1")
    ids = _plan(conn, idx, item, [_rule("front", "info"), _rule("sdf", "warning"), _rule("oil", "critical"),
                                  _rule("mail_only", "critical", channels=("loud",))], ch)
    assert len(ids) == 4  # one alert per (story, rule): the UNIQUE rows stay
    assert conn.execute("SELECT count(*) FROM outbox").fetchone()[0] == 3 + 3  # loud: warning and up only
    report = asyncio.run(Deliverer(conn, ch, console=out).drain(timeout=5))  # both channels print here
    assert report.sent == 6 and report.messages == 2 and report.pending == 0
    text = out.getvalue().replace("\u2068", "").replace("\u2069", "")
    blocks = [b for b in text.split("═" * 40) if b.strip()]
    assert len(blocks) == 2
    out_block = next(b for b in blocks if "قاعدة front" in b)
    loud_block = next(b for b in blocks if "قاعدة front" not in b)
    # every rule once, highest severity first; the article once
    assert out_block.index("قاعدة oil") < out_block.index("قاعدة sdf") < out_block.index("قاعدة front")
    assert "mail_only" not in out_block and out_block.count("📰") == 1
    assert loud_block.index("قاعدة oil") < loud_block.index("قاعدة sdf") and "قاعدة mail_only" in loud_block
    # the matched line names each entity once, by its label, not its surface form with a clitic
    tags = next(line for line in out_block.splitlines() if line.startswith("🏷"))
    assert tags == "🏷  قسد، البوكمال"
    assert "والبوكمال" not in tags
    sent_at = {r[0] for r in conn.execute("SELECT sent_at FROM outbox WHERE channel = 'out'")}
    assert len(sent_at) == 1  # the story's rows were marked sent together


def test_a_rule_firing_later_on_the_story_sends_an_update(tmp_path):
    conn = open_state(tmp_path / "s.db")
    out = io.StringIO()
    ch = {"out": ChannelSettings(url="console://")}
    idx = StoryIndex()
    item = Item("outlet", "guid:1", "عنوان الخبر عن المعارك", BODY, link="https://example.org/1")
    _plan(conn, idx, item, [_rule("front", "info"), _rule("sdf", "warning")], ch)
    assert asyncio.run(Deliverer(conn, ch, console=out).drain(timeout=5)).messages == 1
    # the item is edited; one more rule fires on the same story; the first two never re-alert
    edited = Item("outlet", "guid:1", "عنوان الخبر عن المعارك", BODY + " وحقل العمر", link="https://example.org/1")
    assert len(_plan(conn, idx, edited, [_rule("front", "info"), _rule("sdf", "warning"),
                                         _rule("oil", "critical")], ch, now=2000.0)) == 1
    later = io.StringIO()
    report = asyncio.run(Deliverer(conn, ch, console=later).drain(timeout=5))
    assert report.messages == 1 and report.sent == 1
    text = later.getvalue().replace("\u2068", "").replace("\u2069", "")
    assert "تحديث" in text and "قاعدة oil" in text and "قاعدة front" not in text
    assert "تحديث" not in out.getvalue()


# -- reload: channels added and removed while running --------------------------

def test_reload_starts_added_channels_and_stops_removed_ones(tmp_path):
    conn = open_state(tmp_path / "s.db")
    out = io.StringIO()
    a, b = ChannelSettings(url="console://"), ChannelSettings(url="console://")
    d = Deliverer(conn, {"a": a}, console=out)

    def states(channel):
        return [r[0] for r in conn.execute("SELECT state FROM outbox WHERE channel = ? ORDER BY id", (channel,))]

    async def until(predicate):
        for _ in range(250):
            if predicate():
                return True
            await asyncio.sleep(0.02)
        return False

    async def scenario():
        stop = asyncio.Event()
        task = asyncio.create_task(d.run(stop))
        await asyncio.sleep(0.05)
        idx = StoryIndex()
        item = Item("outlet", "guid:1", "قسد تتقدم", BODY, link="https://example.org/1")
        _plan(conn, idx, item, [_rule("front", "info")], {"a": a, "b": b}, now=d.clock())
        d.wake()
        assert await until(lambda: states("a") == ["sent"])
        assert states("b") == ["pending"]                 # no task for b yet
        d.update_channels({"a": a, "b": b})               # reload adds b: its queued row goes out
        assert await until(lambda: states("b") == ["sent"])
        assert set(d._tasks) == {"a", "b"}

        d.update_channels({"b": b})                       # reload removes a: its task ends cleanly
        assert await until(lambda: d._tasks["a"].done())
        assert d._tasks["a"].exception() is None and not d._tasks["b"].done()
        other = Item("outlet2", "guid:2", "خبر مختلف تماما عن حقل العمر", "تفاصيل أخرى لا تشبه الأولى",
                     link="https://example.org/2")
        _plan(conn, idx, other, [_rule("oil", "critical")], {"a": a, "b": b}, now=d.clock())
        d.wake()
        assert await until(lambda: states("b") == ["sent", "sent"])
        await asyncio.sleep(0.1)
        assert states("a") == ["sent", "pending"]         # kept for when a comes back

        d.update_channels({"a": a, "b": b})               # and it comes back
        assert await until(lambda: states("a") == ["sent", "sent"])
        stop.set()
        await asyncio.wait_for(task, 5)
        assert all(t.done() for t in d._tasks.values())

    asyncio.run(scenario())


def test_removed_channel_rows_are_listed_as_pending(tmp_path):
    conn = open_state(tmp_path / "s.db")
    a, b = ChannelSettings(url="console://"), ChannelSettings(url="console://")
    item = Item("outlet", "guid:1", "قسد تتقدم", BODY, link="https://example.org/1")
    _plan(conn, StoryIndex(), item, [_rule("front", "info")], {"a": a, "b": b})
    report = asyncio.run(Deliverer(conn, {"b": b}, console=io.StringIO()).drain(timeout=5))
    assert report.sent == 1 and report.pending == 1
    (alert,) = list_alerts(conn)
    assert {d.channel: d.state for d in alert.deliveries} == {"a": "pending", "b": "sent"}


def test_a_row_that_cannot_become_a_message_goes_dead_and_the_rest_go_out(tmp_path):
    from fake_telegram import VirtualClock

    conn = open_state(tmp_path / "s.db")
    ch = seed(conn, 3)
    with conn.transaction():
        conn.execute("UPDATE alerts SET payload = '{not json' WHERE id = 2")  # a damaged row
    clock = VirtualClock()
    out = io.StringIO()
    report = asyncio.run(Deliverer(conn, ch, console=out, clock=clock.time, sleep=clock.sleep).drain(timeout=600))
    assert out.getvalue().count("📰") == 2 and report.dead == 1
    row = conn.execute("SELECT state, reason, failures, last_error FROM outbox WHERE alert_id = 2").fetchone()
    assert tuple(row[:3]) == ("dead", "bad_request", 3) and "JSONDecodeError" in row[3]


def test_a_loop_that_died_is_started_again_with_the_ops_channel_kept(tmp_path):
    """The daemon's check restarts a channel loop that ended with an error; a restart is not a
    reload: the ops channel (where give-up notices go) and the rest of the settings stay."""
    conn = open_state(tmp_path / "s.db")
    ch = {"out": ChannelSettings(url="console://")}
    out = io.StringIO()
    d = Deliverer(conn, ch, console=out, ops_channel="out")

    async def boom() -> None:
        raise RuntimeError("a bug in the loop")

    async def scenario():
        stop = asyncio.Event()
        task = asyncio.create_task(d.run(stop))
        await asyncio.sleep(0.05)
        loop = d._tasks["out"]
        loop.cancel()
        crashed = asyncio.create_task(boom())
        await asyncio.wait([loop, crashed])
        d._tasks["out"] = crashed  # what a loop that raised leaves behind
        assert d.progress().stopped == ("out",)
        assert d.restart_stopped() == ("out",)
        assert d.progress().stopped == () and d.ops_channel == "out"
        seed(conn, 1, now=d.clock())
        d.wake()
        for _ in range(250):
            if "قوات سوريا الديمقراطية" in out.getvalue():
                break
            await asyncio.sleep(0.02)
        stop.set()
        await asyncio.wait_for(task, 5)

    asyncio.run(scenario())
    assert "قوات سوريا الديمقراطية" in out.getvalue()
