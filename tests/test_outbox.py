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
        payload = state_alerts.AlertPayload(rule_id=rule, rule_title=rule, feed="f", title=f"s{story}")
        alert = row[0] if row else state_alerts.insert(conn, story_id=story, rule_id=rule, item_key=f"k{story}",
                                                       severity="info", payload=payload, now=0.0)
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
    assert isinstance(view, ob.AlertView)
    assert view.earlier_rules == ("Front",) and view.item_key == "k1" and view.payload.title == "s1"


def test_a_row_set_aside_does_not_hold_up_the_line(conn):
    poison = add(conn, 1, "front")
    behind = add(conn, 2, "front", not_before=1.0)
    claimed = ob.claim(conn, "tg", now=10.0)
    assert claimed.ids == (poison,)
    ob.record_failure(conn, claimed.ids, reason="bad_request", error="Telegram 400", now=10.0, retry_at=100.0)
    assert ob.claim(conn, "tg", now=11.0).ids == (behind,)          # the line moves on past it
    assert ob.claim(conn, "tg", now=11.0) is None
    assert ob.next_due(conn, "tg") == 100.0
    again = ob.claim(conn, "tg", now=100.0)
    assert again.ids == (poison,) and again.failures == 1 and again.first_failed_at == 10.0


def test_exclude_leaves_the_suspect_out_of_the_probe(conn):
    head = add(conn, 1, "front")
    probe = add(conn, 2, "front", not_before=1.0)
    assert ob.claim(conn, "tg", now=5.0, exclude=(head,)).ids == (probe,)
    assert ob.claim(conn, "tg", now=5.0, exclude=(head,)) is None
    assert ob.claim(conn, "tg", now=5.0).ids == (head,)


def test_thread_root_is_the_first_message_and_knows_digests(conn):
    first = add(conn, 1, "front")
    ob.claim(conn, "tg", now=1.0)
    ob.mark_sent(conn, [first], 1.0, message_id="-100/7", sent_as="message", subject="S", parts=1)
    reply = add(conn, 1, "oil", not_before=2.0)
    ob.claim(conn, "tg", now=2.0)
    ob.mark_sent(conn, [reply], 2.0, message_id="-100/8", sent_as="reply")
    root = ob.thread_root(conn, "tg", 1)
    assert root == ob.ThreadRoot("-100/7", "S", 1, 1)                  # a reply never becomes the root
    assert ob.sent_alert_ids(conn, "tg", 1) == [first, reply]
    # a digest: one message id shared by two stories cannot be edited into one story
    a, b = add(conn, 2, "front", group_key="digest"), add(conn, 3, "front", group_key="digest")
    claimed = ob.claim(conn, "tg", now=3.0)
    assert sorted(claimed.ids) == sorted([a, b])
    ob.mark_sent(conn, claimed.ids, 3.0, message_id="-100/9", sent_as="message", parts=1)
    assert ob.thread_root(conn, "tg", 2).stories == 2
    assert ob.thread_root(conn, "mail", 1) is None


def test_after_a_merge_the_surviving_story_keeps_one_thread(conn):
    """Dedup may merge two stories (alerts re-pointed to the survivor): their first message stays the root."""
    older = add(conn, 1, "front")
    ob.claim(conn, "tg", now=1.0)
    ob.mark_sent(conn, [older], 1.0, message_id="-100/1", sent_as="message")
    newer = add(conn, 2, "sdf", not_before=2.0)
    ob.claim(conn, "tg", now=2.0)
    ob.mark_sent(conn, [newer], 2.0, message_id="-100/2", sent_as="message")
    with conn.transaction():
        conn.execute("UPDATE alerts SET story_id = 1 WHERE story_id = 2")
    assert ob.thread_root(conn, "tg", 1).message_id == "-100/1"


def test_rearm_queues_a_sent_followup_again_and_retry_dead_forgets_failures(conn):
    alert = add(conn, 1, "front")
    ob.claim(conn, "tg", now=1.0)
    ob.mark_sent(conn, [alert], 1.0)
    follow = add(conn, 1, "front", kind="followup", not_before=2.0)
    ob.claim(conn, "tg", now=2.0)
    ob.mark_sent(conn, [follow], 2.0, message_id="-100/1", sent_as="edit")
    aid = conn.execute("SELECT alert_id FROM outbox WHERE id = ?", (follow,)).fetchone()[0]
    with conn.transaction():
        assert ob.enqueue(conn, alert_id=aid, channel="tg", kind="followup", not_before=3.0, now=3.0) is None
        assert ob.enqueue(conn, alert_id=aid, channel="tg", kind="followup", not_before=3.0, now=3.0,
                          rearm=True) == follow
        assert ob.enqueue(conn, alert_id=aid, channel="tg", kind="followup", not_before=4.0, now=4.0,
                          rearm=True) is None  # already pending: the edit will show the latest count
    assert conn.execute("SELECT state FROM outbox WHERE id = ?", (follow,)).fetchone()[0] == "pending"
    claimed = ob.claim(conn, "tg", now=5.0)
    ob.mark_dead(conn, claimed.ids, reason="bad_request", error="x", now=5.0)
    assert ob.dead_count(conn, "tg") == 1 and ob.dead_by_reason(conn) == {("tg", "bad_request"): 1}
    assert ob.retry_dead(conn, follow)
    row = conn.execute("SELECT state, failures, first_failed_at FROM outbox WHERE id = ?", (follow,)).fetchone()
    assert tuple(row) == ("pending", 0, None)


def test_a_version_3_outbox_is_rebuilt_with_its_rows(tmp_path):
    """Step 4 rebuilds the outbox (SQLite cannot change a CHECK in place): every row and column survives."""
    import sqlite3

    from monitor.state.schema import MIGRATIONS

    path = tmp_path / "v3.sqlite3"
    raw = sqlite3.connect(path)
    for version in (1, 2, 3):
        for statement in MIGRATIONS[version]:
            raw.execute(statement)
    raw.execute("INSERT INTO stories(id, created, updated, text_hash) VALUES (1, 0, 0, 'h')")
    raw.execute("INSERT INTO alerts(id, story_id, rule_id, item_key, created, payload) "
                "VALUES (1, 1, 'r', 'k', 0, '{}')")
    raw.execute("INSERT INTO outbox(id, alert_id, channel, state, attempts, not_before, created, last_error, "
                "possible_repeat) VALUES (7, 1, 'tg', 'dead', 5, 0, 0, 'HTTP 401', 1)")
    raw.execute("INSERT INTO outbox(id, alert_id, channel, kind, state, not_before, created, body) "
                "VALUES (8, NULL, 'ops', 'notice', 'pending', 0, 0, 'feed down')")
    raw.execute("PRAGMA user_version=3")
    raw.commit()
    raw.close()
    db = open_state(path)
    rows = [tuple(r) for r in db.all("SELECT id, state, attempts, failures, last_error, possible_repeat, body "
                                     "FROM outbox ORDER BY id")]
    assert rows == [(7, "dead", 5, 5, "HTTP 401", 1, None), (8, "pending", 0, 0, None, 0, "feed down")]
    with db.transaction():
        db.execute("UPDATE outbox SET state = 'silenced', silence_id = 1 WHERE id = 7")  # the new state is allowed
    assert {r["name"] for r in db.all("SELECT name FROM sqlite_master WHERE type = 'index'")} >= {
        "outbox_due", "outbox_message", "silences_ends"}
    assert ob.claim(db, "ops", now=1.0).ids == (8,)
