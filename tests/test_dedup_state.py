"""Story dedup's state (members, bands, sentences, learned furniture, merges) on both backends:
SQLite and a real PostgreSQL server, through the public API only, so that SQL one dialect
spells differently fails here."""

from __future__ import annotations

import random

import pytest
from dedup_variants import FOOTERS, VARIANTS, brief, corpus

from monitor.alerts.route import plan_alerts
from monitor.alerts.settings import ChannelSettings, RoutingSettings
from monitor.rules import Hit, RuleMatch
from monitor.state import alerts as state_alerts
from monitor.state import open_state
from monitor.state import outbox as state_outbox
from monitor.state import stories as state_stories
from monitor.stories.furniture import REMEMBER_DAYS, forget, furniture_mask
from monitor.stories.index import StoryIndex
from monitor.stories.key import dedup_key, dedup_keys
from monitor.stories.settings import DedupSettings
from monitor.types import Item

NOW = 1_800_000_000.0
SETTINGS = DedupSettings()


@pytest.fixture
def db(state_target):
    database = open_state(state_target)
    yield database
    database.close()


def fold(index: StoryIndex, db, items: list[Item], now: float = NOW):
    keys = dedup_keys(items, [True] * len(items), SETTINGS, index.permutations)
    with db.transaction():
        return [index.assign(db, it, now, key) for it, key in zip(items, keys, strict=True)]


def test_copies_join_by_band_or_by_sentence_and_a_bridge_merges_on_both_backends(db):
    index = StoryIndex(SETTINGS)
    paragraphs = [p for p in corpus()[1].split("\n") if len(p.split()) >= 8][:10]
    original = "\n".join(paragraphs)
    excerpt = "\n".join(paragraphs[:6]) + " ..."
    dropped = "\n".join(paragraphs[:2] + paragraphs[5:])
    edited = VARIANTS["combined"](original, random.Random(3))
    [e] = fold(index, db, [Item("e", "guid:e", "عنوان", excerpt)])
    [d] = fold(index, db, [Item("d", "guid:d", "عنوان", dropped)], NOW + 1)
    assert e.new_story and d.new_story
    match = RuleMatch("front", "front", "", "info", (), None, (Hit("x", "x", "title", 0, 1, "ع"),))
    channels = {"tg": ChannelSettings(url="console://")}
    routing = RoutingSettings(group_wait=0, group_interval=0)
    with db.transaction():
        for story, key in ((e, "guid:e"), (d, "guid:d")):
            plan_alerts(db, Item("x", key, "عنوان"), story, [match], channels, routing, NOW)
    [o] = fold(index, db, [Item("o", "guid:o", "عنوان", original)], NOW + 2)
    assert o.story_id == e.story_id and o.merged_from == (d.story_id,)
    [c] = fold(index, db, [Item("c", "guid:c", "عنوان آخر", edited)], NOW + 3)
    assert c.story_id == e.story_id and c.reason == "near"
    assert [a.rule_id for a in state_alerts.of_story(db, e.story_id)] == ["front"]
    assert db.scalar("SELECT count(*) FROM outbox") == 1
    assert state_outbox.depth(db) == 1
    assert db.scalar("SELECT count(*) FROM stories") == 1
    assert sorted(s.feed for s in state_stories.sources(db, e.story_id)) == ["c", "d", "e", "o"]


def test_furniture_is_learned_shared_and_forgotten_on_both_backends(db):
    index = StoryIndex(SETTINGS)
    items = [Item("site-a", f"guid:{n}", f"خبر {n}", f"{brief(n)}\n{FOOTERS['site-a']}") for n in range(3)]
    made = fold(index, db, items)
    assert len({a.story_id for a in made}) == 3
    key = dedup_key(Item("site-a", "guid:9", "خبر", f"{brief(5)}\n{FOOTERS['site-a']}"), SETTINGS,
                    index.permutations)
    mask, known = furniture_mask(db, "site-a", key)
    assert mask.sum() == len(known) > 0
    with db.transaction():
        forget(db, NOW + REMEMBER_DAYS * 86400 + 1, 1000)
    assert furniture_mask(db, "site-a", key)[0].sum() == 0


def test_expired_members_leave_the_index_on_both_backends(db):
    settings = DedupSettings(window_hours=1)
    index = StoryIndex(settings)
    with db.transaction():
        for n, text in enumerate(corpus()):
            index.assign(db, Item(f"f{n}", f"guid:{n}", "عنوان", text), NOW)
    assert db.scalar("SELECT count(*) FROM story_members") == 5
    assert StoryIndex(settings).load(db, NOW + 7200) == 0
    assert db.scalar("SELECT count(*) FROM story_members") + db.scalar("SELECT count(*) FROM story_bands") == 0
