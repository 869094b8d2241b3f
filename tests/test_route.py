"""Routing: one alert per (story, rule), outbox rows per channel, grouping, quiet hours, follow-ups."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from monitor.alerts.route import next_digest, plan_alerts, quiet_until
from monitor.alerts.settings import ChannelSettings, RoutingSettings
from monitor.rules import Hit, RuleMatch
from monitor.state import open_state
from monitor.stories.index import StoryIndex
from monitor.types import Item

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=ZoneInfo("UTC")).timestamp()
TEXT = "قوات سوريا الديمقراطية تسيطر على حقل العمر النفطي شرق دير الزور"


@pytest.fixture
def conn(tmp_path):
    c = open_state(tmp_path / "s.db")
    yield c
    c.close()


def match(rule="qasad", severity="info", channels=(), cooldown=None):
    hit = Hit("qasad", "قوات سوريا الديمقراطية", "title", 0, 22, TEXT[0:22])
    return RuleMatch(rule, f"title {rule}", "", severity, tuple(channels), cooldown, (hit,))


def run(conn, idx, item, matches, channels, routing=None, now=NOW):
    routing = routing or RoutingSettings()
    with conn.transaction():
        story = idx.assign(conn, item, now)
        return plan_alerts(conn, item, story, matches, channels, routing, now)


CH = {"tg": ChannelSettings(url="console://"), "mail": ChannelSettings(url="console://", min_severity="warning")}


def outbox(conn):
    return [dict(r) for r in conn.execute(
        "SELECT alert_id, channel, kind, not_before, group_key FROM outbox ORDER BY id")]


def test_one_alert_per_story_and_rule_across_outlets_polls_and_edits(conn):
    idx = StoryIndex()
    first = run(conn, idx, Item("a", "guid:1", TEXT), [match()], CH)
    assert len(first) == 1
    assert run(conn, idx, Item("b", "guid:2", TEXT + "،"), [match()], CH) == []   # other outlet
    assert run(conn, idx, Item("a", "guid:1", TEXT), [match()], CH) == []         # re-poll
    edited = run(conn, idx, Item("a", "guid:1", TEXT + " والبوكمال"), [match(), match("bukamal")], CH)
    assert len(edited) == 1  # only the rule it did not match before
    rows = outbox(conn)
    assert [(r["channel"], r["kind"]) for r in rows] == [("tg", "alert"), ("tg", "alert")]  # mail: below min_severity
    assert all(r["not_before"] == NOW and r["group_key"] is None for r in rows)


def test_match_channels_and_severity_filter(conn):
    run(conn, StoryIndex(), Item("a", "guid:1", TEXT), [match(severity="critical", channels=("mail",))], CH)
    assert [r["channel"] for r in outbox(conn)] == ["mail"]


def test_group_wait_and_cooldown_group_into_one_slot(conn):
    idx = StoryIndex()
    routing = RoutingSettings(group_wait=30)
    run(conn, idx, Item("a", "guid:1", TEXT), [match(cooldown=600)], {"tg": CH["tg"]}, routing)
    run(conn, idx, Item("b", "guid:2", "خبر آخر عن قسد في البوكمال"), [match(cooldown=600)], {"tg": CH["tg"]},
        routing, NOW + 10)
    rows = outbox(conn)
    assert [r["not_before"] for r in rows] == [NOW + 30, NOW + 30]
    assert rows[0]["group_key"] == rows[1]["group_key"] == "rule:qasad"
    conn.execute("UPDATE outbox SET state='sent', sent_at=?", (NOW + 30,))
    run(conn, idx, Item("c", "guid:3", "خبر ثالث مختلف تماما عن قسد"), [match(cooldown=600)], {"tg": CH["tg"]},
        routing, NOW + 100)
    assert outbox(conn)[-1]["not_before"] == NOW + 30 + 600


def test_quiet_hours_in_time_zone_and_critical_bypass(conn):
    riyadh = ChannelSettings(url="console://", quiet_hours="22:00-07:00", timezone="Asia/Riyadh")
    night = datetime(2026, 3, 2, 23, 30, tzinfo=ZoneInfo("Asia/Riyadh")).timestamp()
    morning = datetime(2026, 3, 3, 7, 0, tzinfo=ZoneInfo("Asia/Riyadh")).timestamp()
    assert quiet_until(night, "22:00-07:00", "Asia/Riyadh") == morning
    assert quiet_until(morning, "22:00-07:00", "Asia/Riyadh") is None
    idx = StoryIndex()
    run(conn, idx, Item("a", "guid:1", TEXT), [match()], {"q": riyadh}, now=night)
    run(conn, idx, Item("a", "guid:2", "عاجل عن قسد"), [match("crit", severity="critical")], {"q": riyadh}, now=night)
    assert [r["not_before"] for r in outbox(conn)] == [morning, night]


def test_digest_boundary():
    assert next_digest(NOW + 1, 60, "UTC") == NOW + 3600


def test_followup_once_per_story_and_channel(conn):
    idx = StoryIndex()
    routing = RoutingSettings(followup_after=1800)
    run(conn, idx, Item("a", "guid:1", TEXT), [match()], {"tg": CH["tg"]}, routing)
    for n, feed in enumerate(["b", "c", "d"]):
        run(conn, idx, Item(feed, f"guid:{feed}", TEXT), [match()], {"tg": CH["tg"]}, routing, NOW + 60 * (n + 1))
    kinds = [(r["kind"], r["not_before"]) for r in outbox(conn)]
    assert kinds == [("alert", NOW), ("followup", NOW + 1800)]


def test_channel_settings_reject_optional_and_bad_values():
    with pytest.raises(ValueError, match="optional"):
        ChannelSettings(url="tgram://123456789:abcdefg_hijklmnopqrstuvwxyz012345/-100123?optional=yes")
    with pytest.raises(ValueError):
        ChannelSettings(url="console://", timezone="Mars/Base")
    with pytest.raises(ValueError):
        ChannelSettings(url="console://", quiet_hours="25:00-07:00")
    with pytest.raises(ValueError):
        ChannelSettings(url="console://", colour="red")
    tg = ChannelSettings(url="tgram://123456789:abcdefg_hijklmnopqrstuvwxyz012345/-100123")
    assert tg.limits() == (1.0, 20)
    assert "abcdefg_hijklmnopqrstuvwxyz012345" not in tg.private_url()


def test_duplicate_of_an_alerted_story_builds_no_payload(conn, monkeypatch):
    import monitor.alerts.route as route

    idx = StoryIndex()
    assert len(run(conn, idx, Item("a", "guid:1", TEXT), [match()], CH)) == 1
    built = []
    real = route._payload
    monkeypatch.setattr(route, "_payload", lambda *a: built.append(a[0].key) or real(*a))
    assert run(conn, idx, Item("b", "guid:2", TEXT + "،"), [match(), match("bukamal")], CH) != []
    assert built == ["guid:2"]  # only for the rule this story had not alerted for
    assert conn.execute("SELECT count(*) FROM alerts").fetchone()[0] == 2
