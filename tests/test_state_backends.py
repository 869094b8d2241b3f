"""The state layer's contract, run against SQLite and a real PostgreSQL server.

Each state module's functions are exercised through their public API only,
so any SQL that one dialect spells differently shows up here as a failure on
that backend.
"""

from __future__ import annotations

import pytest

from monitor.state import SCHEMA_VERSION, StateError, alerts, connect, feeds, items, meta, open_state, outbox, retention
from monitor.state import stories as state_stories


@pytest.fixture
def db(state_target):
    database = open_state(state_target)
    yield database
    database.close()


def test_a_new_state_gets_every_migration_step_once(state_target):
    first = open_state(state_target)
    assert first.schema_version() == SCHEMA_VERSION
    created = meta.get(first, "created")
    first.close()
    again = open_state(state_target)
    assert again.schema_version() == SCHEMA_VERSION and meta.get(again, "created") == created
    again.close()


def test_a_newer_schema_is_refused(state_target):
    db = open_state(state_target)
    with db.transaction():
        db.set_schema_version(SCHEMA_VERSION + 1)
    db.close()
    with pytest.raises(StateError, match="newer|upgrade"):
        open_state(state_target)


def test_tables_without_a_version_are_refused(state_target):
    raw = connect(state_target)
    with raw.transaction():
        raw.execute("CREATE TABLE notes (text TEXT)")
    raw.close()
    with pytest.raises(StateError, match="no schema version"):
        open_state(state_target)


def test_feed_rows_record_success_errors_and_schedule(db):
    with db.transaction():
        feeds.record_success(db, "a", "https://a.example/rss", polled_at=10.0, succeeded_at=11.0, etag='"e1"',
                             last_modified=None, permanent_redirect=None, body_hash="h1", new_items=3, alerts=2)
    feeds.record_error(db, "a", "https://a.example/rss", polled_at=20.0, error="timeout", kind="timeout", at=21.0)
    feeds.record_schedule(db, "a", "https://a.example/rss", 600.0, 700.0)
    record = feeds.get(db, "a")
    assert record is not None
    assert (record.etag, record.body_hash, record.items_seen, record.alerts_created) == ('"e1"', "h1", 3, 2)
    assert (record.consecutive_errors, record.last_error_kind, record.next_poll_at) == (1, "timeout", 700.0)
    assert feeds.failing(db, 1) == ["a"] and feeds.last_poll(db) == 20.0
    moved = feeds.sync_url(db, "a", "https://b.example/rss")
    assert moved is not None and moved.url == "https://b.example/rss" and moved.etag is None


def test_items_seen_marks(db):
    with db.transaction():
        items.record(db, key="guid:1", feed="a", content_hash="c1", title="t", link=None, story_id=None,
                     rules=["r2", "r1"], now=5.0)
    assert items.known_hashes(db, ["guid:1", "guid:2"]) == {"guid:1": "c1"}
    seen = items.get(db, "guid:1")
    assert seen is not None and seen.rules == ("r1", "r2") and items.exists(db, "guid:1")
    with db.transaction():
        items.record(db, key="guid:1", feed="b", content_hash="c2", title="t2", link="https://x", story_id=None,
                     rules=["r1"], now=6.0)
        items.mark_feed_seen_again(db, "a", 5.0, 9.0)
    again = items.get(db, "guid:1")
    assert again is not None and again.content_hash == "c2"
    assert db.scalar("SELECT feed FROM items WHERE key = ?", ("guid:1",)) == "a"  # first feed kept


def test_stories_alerts_and_the_outbox_round_trip(db):
    with db.transaction():
        story = state_stories.create(db, now=100.0, text_hash="th", title="t", shingles=4)
        state_stories.add_item(db, story, item_key="k1", feed="a", link="https://a/1", title="t", now=100.0,
                               new_story=True)
        state_stories.add_item(db, story, item_key="k2", feed="b", link="https://b/1", title="t", now=101.0)
        state_stories.touch(db, story, 50.0)  # never moves back
        payload = alerts.AlertPayload(rule_id="front", rule_title="Front", feed="a", title="عنوان")
        alert = alerts.insert(db, story_id=story, rule_id="front", item_key="k1", severity="info",
                              payload=payload, now=100.0)
        assert alert is not None
        assert alerts.insert(db, story_id=story, rule_id="front", item_key="k2", severity="info",
                             payload=payload, now=101.0) is None
        row = outbox.enqueue(db, alert_id=alert, channel="tg", kind="alert", not_before=100.0, now=100.0)
        assert row is not None
    assert state_stories.story_of_item(db, "k2") == story
    assert state_stories.live_by_link(db, "https://b/1", 0.0) == story
    assert state_stories.live_by_text_hash(db, "th", 0.0) == story
    assert state_stories.exact_match(db, "k9", "https://b/1", "th", 0.0) == state_stories.ExactMatch(None, story, story)
    assert [s.feed for s in state_stories.sources(db, story)] == ["a", "b"]
    assert db.scalar("SELECT sources FROM stories WHERE id = ?", (story,)) == 2
    assert db.scalar("SELECT updated FROM stories WHERE id = ?", (story,)) == 101.0
    assert outbox.next_due(db, "tg") == 100.0 and outbox.depth(db) == 1

    claimed = outbox.claim(db, "tg", 200.0)
    assert isinstance(claimed, outbox.Claimed) and claimed.ids == (row,)
    (view,) = outbox.load_views(db, claimed.ids)
    assert isinstance(view, outbox.AlertView)
    assert view.payload.title == "عنوان" and [s.feed for s in view.sources] == ["a", "b"]
    outbox.record_failure(db, claimed.ids, reason="server_error", error="HTTP 500", now=200.0, retry_at=300.0)
    assert outbox.claim(db, "tg", 250.0) is None  # set aside until 300
    assert outbox.next_due(db, "tg") == 300.0
    again = outbox.claim(db, "tg", 301.0)
    assert isinstance(again, outbox.Claimed) and again.failures == 1 and again.first_failed_at == 200.0
    outbox.mark_dead(db, again.ids, reason="bad_request", error="HTTP 400", now=301.0)
    assert outbox.dead_count(db, "tg") == 1
    assert outbox.retry_dead(db, row) and outbox.counts(db) == {"pending": 1}
    sent = outbox.claim(db, "tg", 400.0)
    assert isinstance(sent, outbox.Claimed)
    outbox.mark_sent(db, sent.ids, 401.0, message_id="42")
    root = outbox.thread_root(db, "tg", story)
    assert root is not None and root.message_id == "42"
    last = outbox.last_for_rule(db, "tg", "front")
    assert last is not None and last.state == "sent"
    (record,) = alerts.recent(db)
    assert record.deliveries[0].channel == "tg" and record.deliveries[0].message_id == "42"
    assert alerts.last_created(db) == 100.0


def test_an_interrupted_send_is_requeued_as_a_possible_repeat(db):
    with db.transaction():
        story = state_stories.create(db, now=1.0, text_hash="x", title="t", shingles=0)
        alert = alerts.insert(db, story_id=story, rule_id="r", item_key="k", severity="info",
                              payload=alerts.AlertPayload(rule_id="r", rule_title="R", feed="a", title="t"), now=1.0)
        assert alert is not None
        outbox.enqueue(db, alert_id=alert, channel="mail", kind="alert", not_before=1.0, now=1.0)
    assert isinstance(outbox.claim(db, "mail", 2.0), outbox.Claimed)
    assert outbox.recover_inflight(db) == 1
    claimed = outbox.claim(db, "mail", 3.0)
    assert isinstance(claimed, outbox.Claimed) and claimed.possible_repeat and claimed.attempts == 2


def test_prune_deletes_only_what_is_finished_and_old(db):
    with db.transaction():
        old = state_stories.create(db, now=1.0, text_hash="o", title="t", shingles=0)
        alert = alerts.insert(db, story_id=old, rule_id="r", item_key="k", severity="info",
                              payload=alerts.AlertPayload(rule_id="r", rule_title="R", feed="a", title="t"),
                              now=1.0)
        assert alert is not None
        sent = outbox.enqueue(db, alert_id=alert, channel="c", kind="alert", not_before=1.0, now=1.0)
        assert sent is not None
        items.record(db, key="k", feed="a", content_hash="h", title="t", link=None, story_id=old, rules=["r"], now=1.0)
    outbox.mark_sent(db, (sent,), 2.0)
    report = retention.prune(db, cutoff=1000.0, batch=1)
    assert report == retention.PruneReport(items=1, stories=1, alerts=1, outbox=1)
    assert outbox.counts(db) == {} and retention.prune(db, cutoff=1000.0, batch=1).total == 0


def test_a_failed_transaction_leaves_nothing(db):
    with pytest.raises(RuntimeError), db.transaction():
        items.record(db, key="k", feed="a", content_hash="h", title="t", link=None, story_id=None, rules=[], now=1.0)
        raise RuntimeError("the poll failed")
    assert not items.exists(db, "k") and not db.in_transaction


# -- several instances on one state ---------------------------------------------------

def test_a_feed_lease_goes_to_one_instance_and_to_another_only_after_it_expires(db):
    url = "https://a.example/rss"
    first = feeds.take_lease(db, "a", url, owner="A", now=100.0, seconds=60.0)
    assert first.taken and first.until == 160.0
    refused = feeds.take_lease(db, "a", url, owner="B", now=110.0, seconds=60.0)
    assert not refused.taken and refused.holder == "A" and refused.retry_at == 160.0
    assert feeds.take_lease(db, "a", url, owner="A", now=120.0, seconds=60.0).taken  # the holder renews
    assert feeds.leases_by_owner(db, 125.0) == {"A": 1}
    # A dies: after its lease ran out, B takes the feed.
    assert feeds.take_lease(db, "a", url, owner="B", now=181.0, seconds=60.0).taken


def test_a_polled_feed_is_not_due_for_another_instance_until_its_next_poll(db):
    url = "https://a.example/rss"
    assert feeds.take_lease(db, "a", url, owner="A", now=100.0, seconds=60.0).taken
    feeds.record_schedule(db, "a", url, 600.0, 700.0, owner="A")  # releases A's lease
    record = feeds.get(db, "a")
    assert record is not None and record.lease_owner is None and record.next_poll_at == 700.0
    early = feeds.take_lease(db, "a", url, owner="B", now=101.0, seconds=60.0)
    assert not early.taken and early.retry_at == 700.0 and early.holder is None
    assert feeds.take_lease(db, "a", url, owner="B", now=101.0, seconds=60.0, when_due=False).taken  # run --once
    assert feeds.release_leases(db, "B") == 1
    assert feeds.take_lease(db, "a", url, owner="B", now=700.0, seconds=60.0).taken


def test_record_schedule_of_another_instance_keeps_the_current_lease(db):
    url = "https://a.example/rss"
    assert feeds.take_lease(db, "a", url, owner="B", now=100.0, seconds=60.0).taken
    feeds.record_schedule(db, "a", url, 600.0, 700.0, owner="A")
    record = feeds.get(db, "a")
    assert record is not None and record.lease_owner == "B"


def test_one_instance_delivers_a_channel_at_a_time(db):
    from monitor.state import instances

    instances.register(db, "A", host="h1", pid=1, version="t", now=100.0)
    instances.register(db, "B", host="h2", pid=2, version="t", now=101.0)
    assert instances.take_channel(db, "tg", owner="A", now=100.0, seconds=30.0)
    assert not instances.take_channel(db, "tg", owner="B", now=110.0, seconds=30.0)
    assert instances.take_channel(db, "tg", owner="A", now=125.0, seconds=30.0)  # renewed until 155
    assert instances.channel_holders(db, 126.0) == {"tg": "A"}
    assert not instances.take_channel(db, "tg", owner="B", now=150.0, seconds=30.0)
    assert instances.take_channel(db, "tg", owner="B", now=156.0, seconds=30.0)  # A stopped renewing
    instances.heartbeat(db, "B", 160.0)
    instances.stopped(db, "B", 161.0)  # a clean stop gives the channel up at once
    assert instances.take_channel(db, "tg", owner="A", now=162.0, seconds=30.0)
    assert [i.id for i in instances.live(db, since=100.0)] == ["A"]


def test_dead_instances_are_reaped_and_their_leases_freed(db):
    from monitor.state import instances

    instances.register(db, "crashed", host="h1", pid=111, version="t", now=100.0)
    instances.register(db, "silent", host="h2", pid=222, version="t", now=100.0)
    instances.register(db, "busy", host="h2", pid=333, version="t", now=100.0)
    instances.heartbeat(db, "busy", 190.0)
    assert feeds.take_lease(db, "a", "https://a", owner="crashed", now=100.0, seconds=300.0).taken
    assert feeds.take_lease(db, "b", "https://b", owner="silent", now=100.0, seconds=300.0).taken
    assert instances.take_channel(db, "tg", owner="crashed", now=100.0, seconds=300.0)
    # On h1 (this host) pid 111 is gone; "silent" on h2 has not beaten for 100 s; "busy" beat at 190.
    dead = instances.reap(db, me="new", host="h1", now=200.0, stale_after=60.0, is_running=lambda pid: pid != 111)
    assert sorted(dead) == ["crashed", "silent"]
    assert feeds.take_lease(db, "a", "https://a", owner="new", now=201.0, seconds=300.0).taken
    assert feeds.take_lease(db, "b", "https://b", owner="new", now=201.0, seconds=300.0).taken
    assert instances.take_channel(db, "tg", owner="new", now=201.0, seconds=300.0)
    assert [i.id for i in instances.live(db, since=0.0)] == ["busy"]


def test_members_of_stories_are_the_newest_few_of_each_live_story(db):
    with db.transaction():
        live = state_stories.create(db, now=100.0, text_hash="a", title="t", shingles=0)
        other = state_stories.create(db, now=100.0, text_hash="b", title="t", shingles=0)
        old = state_stories.create(db, now=1.0, text_hash="c", title="t", shingles=0)
        ids = {story: [state_stories.add_member(db, story_id=story, item_key=f"{story}:{i}", feed=f"f{i}", now=100.0,
                                                shingles=bytes([i]), sentences=b"", band_keys=[])
                       for i in range(4)] for story in (live, other, old)}
    got = state_stories.members_of_stories(db, [live, other, old], cutoff=50.0, per_story=2)
    assert [m.id for m in got] == sorted(ids[live][-2:] + ids[other][-2:], reverse=True)
    assert {m.story_id for m in got} == {live, other} and all(m.hits == 0 for m in got)
    assert {m.shingles for m in got if m.story_id == live} == {bytes([2]), bytes([3])}
