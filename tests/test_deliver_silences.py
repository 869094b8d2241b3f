"""Silences: by rule, entity or channel, recorded (not lost), never sent, and kept across restarts.

In-process tests drive routing and delivery on a fixed clock; the last test
runs the real ``monitor`` command as separate processes (each ``run --once``
is a fresh start) against a loopback feed server.
"""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import pytest
import yaml
from conftest import FeedServer, rss_feed, run_cli

from monitor.alerts.deliver import Deliverer
from monitor.alerts.route import plan_alerts
from monitor.alerts.settings import ChannelSettings, RoutingSettings
from monitor.rules import Hit, RuleMatch
from monitor.state import open_state
from monitor.state import silences as state_silences
from monitor.state.alerts import recent
from monitor.stories.index import StoryIndex
from monitor.types import Item

NOW = 1_800_000_000.0
HOUR = 3600.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def match(rule_id: str, entity: str = "qasad") -> RuleMatch:
    return RuleMatch(rule_id, f"rule {rule_id}", "", "warning", (), None, (Hit(entity, "قسد", "title", 0, 3, "قسد"),))


PLACES = ["الرقة", "الحسكة", "الميادين", "الشدادي", "البصيرة", "هجين", "القامشلي", "منبج"]


def alert(conn, idx, n: int, matches, channels, now: float, routing=None) -> None:
    """Alert ``matches`` on story number ``n`` (every ``n`` its own story)."""
    item = Item(f"outlet{n}", f"guid:{n}", f"قسد خبر رقم {n} في {PLACES[n]}", f"تفاصيل عن {PLACES[n]}",
                link=f"https://news.example/{n}")
    with conn.transaction():
        story = idx.assign(conn, item, now)
        plan_alerts(conn, item, story, matches, channels, routing or RoutingSettings(), now)


def printed(out: io.StringIO) -> list[str]:
    return [line.split("رقم ")[1].split(" ")[0].strip("\u2068\u2069") for line in out.getvalue().splitlines()
            if line.startswith("📰")]


def test_a_silenced_rule_sends_nothing_for_its_duration_and_everything_after(tmp_path):
    conn = open_state(tmp_path / "s.db")
    clock = Clock(NOW)
    ch = {"out": ChannelSettings(url="console://")}
    idx = StoryIndex()
    sid = state_silences.add(conn, rule_id="sdf", entity=None, channel=None, starts=NOW, ends=NOW + 6 * HOUR,
                             comment="flood of SDF items", author="analyst", now=NOW)
    out = io.StringIO()
    for n, when in enumerate([NOW + 60, NOW + 3 * HOUR, NOW + 6 * HOUR - 1]):
        alert(conn, idx, n, [match("sdf")], ch, when)
    alert(conn, idx, 3, [match("oil", "omar")], ch, NOW + 120)           # another rule: not silenced
    clock.now = NOW + 6 * HOUR - 1
    report = asyncio.run(Deliverer(conn, ch, console=out, clock=clock).drain(timeout=5))
    assert printed(out) == ["3"] and report.sent == 1
    states = {a.rule_id + str(a.id): [(d.state, d.silence_id) for d in a.deliveries] for a in recent(conn)}
    assert sorted(v for k, v in states.items() if k.startswith("sdf")) == [[("silenced", sid)]] * 3
    # the silence ends: the next alert of that rule is sent; the silenced ones stay silenced
    for n, when in enumerate([NOW + 6 * HOUR, NOW + 7 * HOUR], start=4):
        alert(conn, idx, n, [match("sdf")], ch, when)
    clock.now = NOW + 7 * HOUR
    asyncio.run(Deliverer(conn, ch, console=out, clock=clock).drain(timeout=5))
    assert printed(out) == ["3", "4", "5"]
    assert state_silences.held_back(conn, [sid]) == {sid: 3}


def test_a_silence_added_while_a_message_waits_holds_it_back(tmp_path):
    conn = open_state(tmp_path / "s.db")
    clock = Clock(NOW)
    ch = {"out": ChannelSettings(url="console://", digest_minutes=60)}
    idx = StoryIndex()
    alert(conn, idx, 0, [match("sdf")], ch, NOW)
    alert(conn, idx, 1, [match("oil", "omar")], ch, NOW)
    assert conn.execute("SELECT group_concat(state) FROM outbox").fetchone()[0] == "pending,pending"  # the digest
    state_silences.add(conn, rule_id=None, entity="qasad", channel=None, starts=NOW + 10, ends=NOW + HOUR * 2,
                       comment="", author="", now=NOW + 10)
    clock.now = NOW + HOUR
    out = io.StringIO()
    report = asyncio.run(Deliverer(conn, ch, console=out, clock=clock).drain(timeout=5))
    assert printed(out) == ["1"] and report.silenced == 1 and report.sent == 1
    assert [r[0] for r in conn.execute("SELECT state FROM outbox ORDER BY id")] == ["silenced", "sent"]


def test_entity_and_channel_matchers(tmp_path):
    conn = open_state(tmp_path / "s.db")
    ch = {"tg": ChannelSettings(url="console://"), "mail": ChannelSettings(url="console://")}
    idx = StoryIndex()
    state_silences.add(conn, rule_id=None, entity="qasad", channel="mail", starts=NOW, ends=NOW + HOUR,
                       comment="", author="", now=NOW)
    alert(conn, idx, 0, [match("sdf", "qasad")], ch, NOW + 1)
    alert(conn, idx, 1, [match("oil", "omar")], ch, NOW + 2)
    rows = conn.execute("SELECT a.rule_id, o.channel, o.state FROM outbox o JOIN alerts a ON a.id = o.alert_id "
                        "ORDER BY o.id").fetchall()
    assert [tuple(r) for r in rows] == [("sdf", "tg", "pending"), ("sdf", "mail", "silenced"),
                                        ("oil", "tg", "pending"), ("oil", "mail", "pending")]
    with pytest.raises(ValueError):
        state_silences.add(conn, rule_id=None, entity=None, channel=None, starts=NOW, ends=NOW + 1, comment="",
                           author="", now=NOW)


RULES = {
    "entities": [{"id": "qasad", "aliases": ["قسد"]}, {"id": "bukamal", "aliases": ["البوكمال"]}],
    "rules": [{"id": "sdf", "title": "SDF", "severity": "warning", "any": ["qasad"]},
              {"id": "bukamal", "title": "Al-Bukamal", "severity": "info", "any": ["bukamal"]}],
}


def _feed(n: int) -> list[dict]:
    """Item i mentions قسد (odd i also البوكمال); every item is its own story."""
    return [{"title": f"بلاغ {i}: قسد تتقدم" + (" نحو البوكمال" if i % 2 else ""),
             "link": f"https://news.example/b/{i}", "guid": f"b-{i}", "description": ""} for i in range(n)]


def test_silences_survive_restarts_and_expire_from_the_cli(tmp_path: Path, feed_server: FeedServer):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yaml").write_text(yaml.safe_dump(RULES, allow_unicode=True), encoding="utf-8")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "state_path": str(tmp_path / "state.sqlite3"), "rules": [str(rules)],
        "feeds": [{"name": "b", "url": feed_server.url("/b.xml")}],
        "channels": {"console": {"url": "console://"}},
    }), encoding="utf-8")
    c = ["--config", str(config)]
    feed_server.set("/b.xml", rss_feed(_feed(2)))
    first = run_cli("run", "--once", *c)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("📰") == 2

    bad = run_cli("silence", *c, "add", "--rule", "sfd", "--for", "6h", "--comment", "x")
    assert bad.returncode == 2 and "did you mean 'sdf'" in bad.stderr
    added = run_cli("silence", "add", *c, "--rule", "sdf", "--for", "6h", "--comment", "SDF flood")
    assert added.returncode == 0 and added.stdout.startswith("silence #1: rule=sdf until"), added.stderr

    # two restarts later (each run --once is a new process), the silence still holds
    for upto in (4, 6):
        feed_server.set("/b.xml", rss_feed(_feed(upto)))
        run = run_cli("run", "--once", *c)
        assert run.returncode == 0, run.stderr
        shown = [line for line in run.stdout.splitlines() if line.startswith("📰")]
        # only the Al-Bukamal rule of the odd items is sent; every SDF alert is silenced
        assert len(shown) == 1 and "البوكمال" in shown[0], run.stdout
    listing = run_cli("silence", *c, "list")
    assert "#1 active" in listing.stdout and "rule=sdf" in listing.stdout and "held back 4" in listing.stdout
    alerts = run_cli("alerts", *c, "--json")
    rows = [json.loads(line) for line in alerts.stdout.splitlines()]
    silenced = [r for r in rows if r["deliveries"][0]["state"] == "silenced"]
    assert len(silenced) == 4 and {r["rule_id"] for r in silenced} == {"sdf"}
    assert all(r["deliveries"][0]["silence_id"] == 1 for r in silenced)
    assert "console=silenced (silence #1)" in run_cli("alerts", *c).stdout

    assert run_cli("silence", *c, "expire", "1").stdout.strip() == "silence #1 expired"
    assert run_cli("silence", *c, "expire", "1").returncode == 1
    feed_server.set("/b.xml", rss_feed(_feed(7)))
    after = run_cli("run", "--once", *c)
    # sent again; the alerts it held back stay silenced
    assert after.stdout.count("📰") == 1 and "بلاغ \u20686\u2069" in after.stdout
    assert "no silence in force" in run_cli("silence", *c, "list").stdout
    assert "#1 expired" in run_cli("silence", *c, "list", "--all").stdout
