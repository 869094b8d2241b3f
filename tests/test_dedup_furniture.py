"""Site furniture learned from repetition: within one poll, across polls (in the state
database, shared and persistent), and from two items of one feed; briefs under long footers."""

from __future__ import annotations

from dedup_variants import FOOTERS, brief

from monitor.feeds.parse import html_to_text
from monitor.state import open_state
from monitor.stories.furniture import REFRESH_SECONDS, REMEMBER_DAYS, forget, furniture_mask, remember
from monitor.stories.index import StoryIndex
from monitor.stories.key import batch_repeats, dedup_key, dedup_keys
from monitor.stories.settings import DedupSettings
from monitor.types import Item

NOW = 1_800_000_000.0
SETTINGS = DedupSettings()


def site_item(site: str, n: int, body: str, *, title: str | None = None) -> Item:
    """An item of ``site``: a headline, the body, the site's footer as its last paragraph."""
    return Item(feed=site, key=f"guid:{site}/{n}", title=title or f"خبر رقم {n} من {site}",
                summary=f"{body}\n{FOOTERS[site]}")


def poll(index: StoryIndex, db, items: list[Item], now: float = NOW):
    """One poll as the pipeline runs it: keys of the whole batch, then one transaction."""
    keys = dedup_keys(items, [True] * len(items), index.settings, index.permutations)
    with db.transaction():
        return [index.assign(db, it, now, key) for it, key in zip(items, keys, strict=True)]


def test_summary_keeps_paragraph_breaks_as_lines_and_html_newlines_as_spaces():
    html_body = "<p>الفقرة\r\nالأولى</p>\n<p>الثانية <b>هنا</b></p>سطر<br/>تابعونا على تويتر"
    assert html_to_text(html_body, lines=True) == "الفقرة الأولى\nالثانية هنا\nسطر\nتابعونا على تويتر"
    assert html_to_text("سطر أول\r\n\r\n  سطر   ثان ", lines=True) == "سطر أول\nسطر ثان"
    assert html_to_text(html_body) == "الفقرة الأولى الثانية هنا سطر تابعونا على تويتر"


def test_batch_repeats_needs_several_items_or_half_of_a_small_document():
    def doc(*items):  # each item: sentence hashes; sentence 0 of an item is its own 20-word text
        return [[(h, 20 if h >= 100 else 5) for h in item] for item in items]

    assert batch_repeats(doc([100, 1], [101, 1], [102, 1]), 3, 12) == {1}
    assert batch_repeats(doc([100, 1], [101, 1], [102], [103], [104], [105]), 3, 12) == set(), "2 of 6 items"
    assert batch_repeats(doc([100, 1], [101, 1]), 3, 12) == {1}, "two briefs under one footer: two of two"
    assert batch_repeats(doc([1, 2], [1, 3]), 3, 12) == set(), "one text under two headlines repeats itself"
    assert batch_repeats(doc([100, 1, 1]), 3, 12) == set()


def _db(tmp_path, name="state.db"):
    return open_state(tmp_path / name)


def test_a_poll_learns_its_footer_so_briefs_under_it_stay_apart_and_copies_meet(tmp_path):
    """Five distinct briefs under one ~100-word footer, in one feed document (each brief is
    a third of its item). The same briefs on another site, under another footer and headline,
    must join them."""
    db = _db(tmp_path)
    index = StoryIndex(SETTINGS)
    first = poll(index, db, [site_item("site-a", n, brief(n)) for n in range(5)])
    assert len({a.story_id for a in first}) == 5 and all(a.new_story for a in first)
    copies = poll(index, db, [site_item("site-b", n, brief(n), title=f"عنوان آخر {n}") for n in range(5)], NOW + 60)
    assert [a.story_id for a in copies] == [a.story_id for a in first]
    assert all(a.reason == "near" and a.similarity >= 0.8 for a in copies), copies
    # The footers now count as furniture in the database, at once.
    key = dedup_key(site_item("site-a", 9, brief(7)), SETTINGS, index.permutations)
    mask, _ = furniture_mask(db, "site-a", key)
    footer = len([s for s in FOOTERS["site-a"].split(".") if s.strip()])
    assert mask.tolist()[-footer:] == [True] * footer and not mask[:-footer].any()
    db.close()


def test_furniture_learned_across_polls_survives_a_restart_and_is_shared(tmp_path):
    """One item per poll (nothing to learn within a poll): the second brief under the footer
    shows it to be furniture, and a new item is compared on its own words. A second connection
    (another instance, or after a restart) sees what was learned."""
    db = _db(tmp_path)
    index = StoryIndex(SETTINGS)
    for n in range(3):
        [made] = poll(index, db, [site_item("site-a", n, brief(n))], NOW + n)
        assert made.new_story
    other = _db(tmp_path)
    key = dedup_key(site_item("site-a", 5, brief(5)), SETTINGS, index.permutations)
    mask, _ = furniture_mask(other, "site-a", key)
    assert mask.sum() == len([s for s in FOOTERS["site-a"].split(".") if s.strip()])
    assert furniture_mask(other, "site-b", key)[0].sum() == 0, "furniture is per feed"
    db.close()
    other.close()


def test_two_items_of_one_feed_sharing_only_a_footer_stay_apart_and_teach_it(tmp_path):
    """Cold start: two briefs in two polls, nothing learned yet. They share their footer word
    for word and nothing else: two stories, and the footer is that feed's furniture now."""
    db = _db(tmp_path)
    index = StoryIndex(SETTINGS)
    [a] = poll(index, db, [site_item("site-a", 1, brief(1))])
    [b] = poll(index, db, [site_item("site-a", 2, brief(2))], NOW + 1)
    assert b.new_story and b.story_id != a.story_id
    key = dedup_key(site_item("site-a", 3, brief(3)), SETTINGS, index.permutations)
    assert furniture_mask(db, "site-a", key)[0].sum() >= 5
    # An update of the first brief on the same site (same sentences, one more) still joins it.
    [c] = poll(index, db, [site_item("site-a", 4, brief(1) + " " + brief(6, 12))], NOW + 2)
    assert c.story_id == a.story_id
    db.close()


def test_a_brief_shorter_than_its_footer_is_compared_on_its_own_words(tmp_path):
    db = _db(tmp_path)
    index = StoryIndex(SETTINGS)
    poll(index, db, [site_item("site-a", n, brief(n, 25)) for n in range(4)])
    poll(index, db, [site_item("site-b", n, brief(n + 4, 25)) for n in range(4)], NOW + 1)
    short = brief(2, 25)
    assert len(short.split()) < len(FOOTERS["site-b"].split()) / 2
    [copy] = poll(index, db, [site_item("site-b", 9, "القامشلي - " + short, title="عاجل")], NOW + 2)
    assert copy.reason == "near" and copy.similarity >= 0.8
    assert copy.story_id == db.scalar("SELECT story_id FROM story_items WHERE item_key = 'guid:site-a/2'")
    db.close()


def test_learned_furniture_is_refreshed_daily_and_forgotten_after_a_month_unseen(tmp_path):
    db = _db(tmp_path)
    index = StoryIndex(SETTINGS)
    poll(index, db, [site_item("site-a", n, brief(n)) for n in range(4)])
    footer = {r["hash"] for r in db.all("SELECT hash FROM feed_sentences WHERE feed = 'site-a'")}
    assert len(footer) == len([s for s in FOOTERS["site-a"].split(".") if s.strip()])
    assert db.scalar("SELECT count(*) FROM feed_sentences") == len(footer), "only furniture is stored"
    key = dedup_key(site_item("site-a", 9, brief(5)), SETTINGS, index.permutations)

    def seen(now: float) -> set[float]:
        with db.transaction():
            mask, known = furniture_mask(db, "site-a", key)
            remember(db, "site-a", key, known, now)
        return {r["last_seen"] for r in db.all("SELECT last_seen FROM feed_sentences")}

    assert seen(NOW + 3600) == {NOW}, "seen again within a day: no write"
    assert seen(NOW + REFRESH_SECONDS + 1) == {NOW + REFRESH_SECONDS + 1}
    with db.transaction():
        forget(db, NOW + REFRESH_SECONDS + REMEMBER_DAYS * 86400, 10_000)
    assert db.scalar("SELECT count(*) FROM feed_sentences") == len(footer)
    with db.transaction():
        forget(db, NOW + REFRESH_SECONDS + 2 + REMEMBER_DAYS * 86400, 10_000)
    assert db.scalar("SELECT count(*) FROM feed_sentences") == 0
    db.close()
