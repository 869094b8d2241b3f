"""Outbox claims: one message per story per channel, groups and digests keep stories whole."""

from __future__ import annotations

import json

import pytest

from monitor.state import alerts as state_alerts
from monitor.state import open_state
from monitor.state import outbox as ob


@pytest.fixture
def conn(tmp_path):
    c = open_state(tmp_path / "s.db")
    yield c
    c.close()


def add(conn, story, rule, channel="tg", not_before=0.0, group_key=None, kind="alert"):
    with conn.transaction():
        conn.execute("INSERT OR IGNORE INTO stories(id, created, updated, text_hash) VALUES (?, 0, 0, ?)",
                     (story, str(story)))
        row = conn.execute("SELECT id FROM alerts WHERE story_id = ? AND rule_id = ?", (story, rule)).fetchone()
        alert = row[0] if row else state_alerts.insert(conn, story_id=story, rule_id=rule, item_key=f"k{story}",
                                                   severity="info", payload={"title": f"s{story}"}, now=0.0)
        return ob.enqueue(conn, alert_id=alert, channel=channel, kind=kind, not_before=not_before, now=0.0,
                          group_key=group_key)


def story_of(conn, ids):
    marks = ",".join("?" * len(ids))
    return sorted({r[0] for r in conn.execute(
        f"SELECT a.story_id FROM outbox o JOIN alerts a ON a.id = o.alert_id WHERE o.id IN ({marks})", ids)})


def test_claim_takes_every_due_row_of_the_heads_story_on_that_channel_only(conn):
    a1 = add(conn, 1, "front")
    b1 = add(conn, 2, "front")
    a2 = add(conn, 1, "sdf")
    a_other = add(conn, 1, "oil", channel="mail")
    a_later = add(conn, 1, "late", not_before=500.0)       # not due yet: its own message later
    first = ob.claim(conn, "tg", now=10.0)
    assert isinstance(first, ob.Claimed) and sorted(first.ids) == sorted([a1, a2])
    second = ob.claim(conn, "tg", now=10.0)
    assert second.ids == (b1,)
    assert ob.claim(conn, "tg", now=10.0) is None
    assert ob.claim(conn, "mail", now=10.0).ids == (a_other,)
    assert ob.claim(conn, "tg", now=600.0).ids == (a_later,)


def test_digest_group_never_splits_a_story_and_caps_stories(conn):
    rows = {(s, r): add(conn, s, r, group_key="digest") for s in (1, 2, 3) for r in ("front", "sdf")}
    rows[(2, "oil")] = add(conn, 2, "oil")  # same story, no group key: still rides with its story
    claimed = ob.claim(conn, "tg", now=10.0, max_group=2)
    assert story_of(conn, claimed.ids) == [1, 2]
    assert sorted(claimed.ids) == sorted(v for (s, _), v in rows.items() if s in (1, 2))
    rest = ob.claim(conn, "tg", now=10.0, max_group=2)
    assert sorted(rest.ids) == sorted([rows[(3, "front")], rows[(3, "sdf")]])


def test_followups_and_notices_go_alone(conn):
    alert = add(conn, 1, "front")
    follow = add(conn, 1, "front", kind="followup", not_before=1.0)
    assert ob.claim(conn, "tg", now=10.0).ids == (alert,)
    assert ob.claim(conn, "tg", now=10.0).ids == (follow,)


def test_load_views_marks_a_later_rule_as_an_update(conn):
    first = add(conn, 1, "front")
    ob.mark_sent(conn, ob.claim(conn, "tg", now=1.0).ids, 1.0)
    with conn.transaction():
        conn.execute("UPDATE alerts SET payload = ? WHERE id = 1", (json.dumps({"rule_title": "Front"}),))
    later = add(conn, 1, "oil", not_before=2.0)
    claimed = ob.claim(conn, "tg", now=3.0)
    assert claimed.ids == (later,) and first not in claimed.ids
    (view,) = ob.load_views(conn, claimed.ids)
    assert view["earlier_rules"] == ["Front"] and view["item_key"] == "k1"
