"""A story is a cluster: an item joins the story of any member it matches, stories a later
item shows to be one are merged (items, sources, alerts and deliveries), whatever the order
the copies arrive in; stock sentences shared with unrelated stories are no evidence."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from dedup_variants import corpus, corpus_sentences

from monitor.alerts.route import plan_alerts
from monitor.alerts.settings import ChannelSettings, RoutingSettings
from monitor.rules import Hit, RuleMatch
from monitor.state import alerts as state_alerts
from monitor.state import items as state_items
from monitor.state import open_state
from monitor.state import outbox as state_outbox
from monitor.stories.fingerprint import fingerprint
from monitor.stories.index import StoryIndex
from monitor.stories.settings import DedupSettings
from monitor.types import Item

NOW = 1_800_000_000.0
SETTINGS = DedupSettings()
SEED = tuple(SETTINGS.boilerplate)
CHANNELS = {"tg": ChannelSettings(url="console://")}
ROUTING = RoutingSettings(group_wait=0, group_interval=0)


@pytest.fixture
def conn(tmp_path):
    c = open_state(tmp_path / "state.db")
    yield c
    c.close()


def containment(a: str, b: str) -> float:
    x, y = fingerprint(a, SEED, 3).shingles, fingerprint(b, SEED, 3).shingles
    return len(np.intersect1d(x, y)) / min(len(np.unique(x)), len(np.unique(y)))


def three_copies() -> dict[str, str]:
    """An original, its first 60 %, and a copy missing three paragraphs of those 60 %: the
    excerpt and the short copy share only half the excerpt, each shares all it has with the
    original."""
    paragraphs = [p for p in corpus()[1].split("\n") if len(p.split()) >= 8][:10]
    assert len(paragraphs) == 10
    texts = {"original": "\n".join(paragraphs),
             "excerpt": "\n".join(paragraphs[:6]) + " ...",
             "dropped": "\n".join(paragraphs[:2] + paragraphs[5:])}
    assert containment(texts["excerpt"], texts["dropped"]) < SETTINGS.threshold
    assert min(containment(texts["original"], texts[k]) for k in ("excerpt", "dropped")) > 0.9
    return texts


def item(kind: str, text: str) -> Item:
    return Item(feed=f"outlet-{kind}", key=f"guid:{kind}", title=f"عنوان {kind}", summary=text)


def assign(index: StoryIndex, db, it: Item, now: float = NOW):
    with db.transaction():
        return index.assign(db, it, now)


@pytest.mark.parametrize("order", list(itertools.permutations(["original", "excerpt", "dropped"])),
                         ids="-".join)
def test_one_story_whatever_the_arrival_order(tmp_path, order):
    texts = three_copies()
    db = open_state(tmp_path / "s.db")
    index = StoryIndex(SETTINGS)
    got = [assign(index, db, item(kind, texts[kind]), NOW + n) for n, kind in enumerate(order)]
    stories = {r["story_id"] for r in db.all("SELECT story_id FROM story_items")}
    assert len(stories) == 1 and db.scalar("SELECT count(*) FROM stories") == 1
    assert db.scalar("SELECT sources FROM stories") == 3
    if order[-1] == "original":  # the excerpt and the short copy came first, as two stories
        assert got[1].new_story and got[-1].merged_from == (got[1].story_id,)
        assert got[-1].story_id == got[0].story_id, "the oldest story survives"
    else:
        assert all(not a.merged_from for a in got)
    db.close()


def match(rule: str) -> RuleMatch:
    return RuleMatch(rule, rule, "", "info", (), None, (Hit("e", "alias", "title", 0, 3, "عنو"),))


def test_a_merge_repoints_items_alerts_and_deliveries_keeping_sent_messages_sent(conn):
    """The excerpt alerted for ``front`` (sent) and ``omar``; the short copy for ``front``
    (still pending) and ``bukamal``. The original merges them: one alert per rule, the earlier
    one for ``front``, whose message was sent and is not queued again; the short copy's pending
    duplicate is dropped; every alert, delivery row and item points at the surviving story."""
    texts = three_copies()
    index = StoryIndex(SETTINGS)

    def fold(kind: str, rules: list[str], now: float):
        it = item(kind, texts[kind])
        with conn.transaction():
            story = index.assign(conn, it, now)
            ids = plan_alerts(conn, it, story, [match(r) for r in rules], CHANNELS, ROUTING, now)
            state_items.record(conn, key=it.key, feed=it.feed, content_hash=kind, title=it.title, link=None,
                               story_id=story.story_id, rules=tuple(rules), now=now)
        return story, ids

    excerpt, (front_sent, omar) = fold("excerpt", ["front", "omar"], NOW)
    sent_row = conn.scalar("SELECT id FROM outbox WHERE alert_id = ?", (front_sent,))
    state_outbox.mark_sent(conn, [sent_row], NOW + 1)
    dropped, (front_pending, bukamal) = fold("dropped", ["front", "bukamal"], NOW + 2)
    assert dropped.new_story and dropped.story_id != excerpt.story_id

    original, new_alerts = fold("original", ["front", "omar", "bukamal", "quake"], NOW + 3)
    assert original.merged_from == (dropped.story_id,) and original.story_id == excerpt.story_id
    assert len(new_alerts) == 1, "only the rule no copy alerted for is new"
    survivor = excerpt.story_id
    assert conn.scalar("SELECT count(*) FROM stories WHERE id = ?", (dropped.story_id,)) == 0
    assert {r["story_id"] for r in conn.all("SELECT story_id FROM alerts")} == {survivor}
    assert {r["story_id"] for r in conn.all("SELECT story_id FROM items")} == {survivor}
    assert {r["story_id"] for r in conn.all("SELECT story_id FROM story_members")} == {survivor}
    assert sorted(a.rule_id for a in state_alerts.of_story(conn, survivor)) == ["bukamal", "front", "omar", "quake"]
    assert state_alerts.of_story(conn, survivor)[0].id == front_sent
    assert conn.scalar("SELECT count(*) FROM alerts WHERE id = ?", (front_pending,)) == 0
    rows = {r["alert_id"]: r["state"] for r in conn.all("SELECT alert_id, state FROM outbox WHERE kind = 'alert'")}
    assert rows[front_sent] == "sent" and rows[omar] == "pending" and rows[bukamal] == "pending"
    assert front_pending not in rows
    assert conn.scalar("SELECT sources FROM stories WHERE id = ?", (survivor,)) == 3


def test_of_two_delivery_rows_the_one_already_sent_stays(conn):
    """The later alert's message went out first: it is kept (moved to the earlier alert) and
    the earlier alert's pending row is dropped, so the channel never gets the story twice."""
    texts = three_copies()
    index = StoryIndex(SETTINGS)
    ids = {}
    for n, kind in enumerate(["excerpt", "dropped"]):
        it = item(kind, texts[kind])
        with conn.transaction():
            story = index.assign(conn, it, NOW + n)
            [ids[kind]] = plan_alerts(conn, it, story, [match("front")], CHANNELS, ROUTING, NOW + n)
    later_row = conn.scalar("SELECT id FROM outbox WHERE alert_id = ?", (ids["dropped"],))
    state_outbox.mark_sent(conn, [later_row], NOW + 5)
    assign(index, conn, item("original", texts["original"]), NOW + 6)
    assert [(r["id"], r["alert_id"], r["state"]) for r in conn.all("SELECT id, alert_id, state FROM outbox")] == [
        (later_row, ids["excerpt"], "sent")]
    assert state_outbox.claim(conn, "tg", NOW + 10) is None, "nothing left to send"


def _sentences(*indexes: int) -> str:
    sentences = corpus_sentences()
    return " ".join(sentences[i] for i in indexes)


def test_stock_sentences_shared_with_an_unrelated_story_are_no_evidence(tmp_path):
    """X and Y are distinct articles that both end with the same two background sentences S.
    Z carries S, one sentence of X and its own text: counting S, Z looks like a copy of X;
    S is also in Y, which Z does not resemble, so S is stock text and Z is a story of its own.
    Without Y nothing says S is stock, and Z joins X (the control)."""
    stock = _sentences(14, 16)
    x = _sentences(11, 12, 13) + "\n" + stock
    y = _sentences(25, 26, 27) + "\n" + stock
    z = stock + "\n" + _sentences(12) + "\n" + _sentences(22, 23)
    assert containment(z, x) >= SETTINGS.threshold > containment(z, y)
    assert containment(x, y) < SETTINGS.threshold
    for with_y in (True, False):
        db = open_state(tmp_path / f"s{with_y}.db")
        index = StoryIndex(SETTINGS)
        first = assign(index, db, Item("a", "guid:x", "عنوان", x))
        if with_y:
            assert assign(index, db, Item("b", "guid:y", "عنوان آخر", y), NOW + 1).new_story
        got = assign(index, db, Item("c", "guid:z", "عنوان ثالث", z), NOW + 2)
        assert got.new_story is with_y and (with_y or got.story_id == first.story_id), (with_y, got)
        db.close()
