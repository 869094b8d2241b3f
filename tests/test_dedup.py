"""Dedup into stories: exact keys, containment on content, window, state in the database."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
from dedup_variants import VARIANTS, corpus, labelled_stream

from monitor.feeds.links import canonical_url
from monitor.state import open_state
from monitor.stories.fingerprint import band_keys, fingerprint, permutations, sentence_signatures, shingle_hashes
from monitor.stories.index import StoryIndex
from monitor.stories.settings import DedupSettings
from monitor.types import Item

NOW = 1_800_000_000.0
SEED = tuple(DedupSettings().boilerplate)


@pytest.fixture
def conn(tmp_path):
    c = open_state(tmp_path / "state.db")
    yield c
    c.close()


def item(text: str, key: str, feed: str = "f1", link: str | None = None) -> Item:
    title, _, summary = text.partition("\n")
    return Item(feed=feed, key=key, title=title, summary=summary, link=link)


def assign(idx, conn, it, now=NOW):
    with conn.transaction():
        return idx.assign(conn, it, now)


def test_corpus_articles_stay_distinct(conn):
    idx = StoryIndex(DedupSettings())
    stories = {assign(idx, conn, item(t, f"guid:{i}"), NOW + i).story_id for i, t in enumerate(corpus())}
    assert len(stories) == 5


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_republished_variant_is_merged(conn, variant):
    idx = StoryIndex(DedupSettings())
    rng = random.Random(3)
    for i, text in enumerate(corpus()):
        first = assign(idx, conn, item(text, f"guid:a{i}", "outlet-a"))
        again = assign(idx, conn, item(VARIANTS[variant](text, rng), f"guid:b{i}", "outlet-b"), NOW + 60)
        assert first.new_story and first.reason == "new"
        assert again.story_id == first.story_id, (variant, i, again)
        assert not again.new_story and again.new_source
        assert again.reason in {"exact", "near"}
    sources = conn.execute("SELECT DISTINCT sources FROM stories").fetchall()
    assert [r[0] for r in sources] == [2]


def test_merge_precision_recall_on_labelled_stream(conn):
    idx = StoryIndex(DedupSettings())
    got = []
    for n, (truth, _name, text) in enumerate(labelled_stream()):
        got.append((truth, assign(idx, conn, item(text, f"guid:{n}"), NOW + n).story_id))
    pairs = list(itertools.combinations(got, 2))
    tp = sum(1 for a, b in pairs if a[0] == b[0] and a[1] == b[1])
    fp = sum(1 for a, b in pairs if a[0] != b[0] and a[1] == b[1])
    fn = sum(1 for a, b in pairs if a[0] == b[0] and a[1] != b[1])
    assert (fp, fn) == (0, 0), f"precision={tp / (tp + fp):.3f} recall={tp / (tp + fn):.3f}"


def test_an_excerpt_is_contained_in_its_original_whatever_came_first(conn):
    """A 35 % excerpt has a Jaccard similarity of ~0.35 with its original, but it is contained
    in it: containment relative to the shorter text is what decides."""
    idx = StoryIndex(DedupSettings())
    for i, text in enumerate(corpus()[:3]):
        lines = text.split("\n")
        short = "\n".join(lines[:max(2, int(len(lines) * 0.35))])
        first, second = (text, short) if i % 2 else (short, text)
        a = assign(idx, conn, item(first, f"guid:x{i}", "a"))
        b = assign(idx, conn, item(second, f"guid:y{i}", "b"), NOW + 1)
        assert b.story_id == a.story_id and b.reason == "near" and b.similarity >= 0.9, b


def test_same_key_is_same_story_even_when_edited(conn):
    idx = StoryIndex(DedupSettings())
    text = corpus()[0]
    a = assign(idx, conn, item(text, "guid:x"))
    b = assign(idx, conn, item("عنوان معدل بالكامل\nنص جديد مختلف", "guid:x"), NOW + 10)
    assert b.story_id == a.story_id and b.reason == "exact" and not b.new_source


def test_canonical_link_across_feeds_is_exact(conn):
    idx = StoryIndex(DedupSettings())
    a = assign(idx, conn, item("خبر قصير", "link:1", "f1", "http://www.Example.com/a/?utm_source=x#top"))
    b = assign(idx, conn, item("عنوان آخر تماما", "link:2", "f2", "https://example.com/a"))
    assert b.story_id == a.story_id and b.reason == "exact"
    assert canonical_url("HTTP://WWW.Example.com/a/?b=2&a=1&utm_medium=m") == "https://example.com/a?a=1&b=2"


def test_short_text_hash_ignores_diacritics_tatweel_and_boilerplate(conn):
    idx = StoryIndex(DedupSettings())
    a = assign(idx, conn, item("سيطرة قسد على حقل العمر", "guid:1"))
    b = assign(idx, conn, item("سيطرةُ قســد على حقلِ العمر، اقرأ أيضا", "guid:2", "f2"))
    c = assign(idx, conn, item("سيطرة الجيش على البوكمال", "guid:3", "f3"))
    assert b.story_id == a.story_id and b.reason == "exact"
    assert c.new_story
    assert fingerprint("أ ب", SEED, 3).word_count == 2


def test_window_expiry_makes_a_new_story(conn):
    s = DedupSettings(window_hours=1)
    idx = StoryIndex(s)
    text = corpus()[1]
    a = assign(idx, conn, item(text, "guid:1"))
    b = assign(idx, conn, item(VARIANTS["reorder"](text, random.Random(1)), "guid:2"), NOW + 2 * 3600)
    assert b.new_story and b.story_id != a.story_id


def test_a_new_index_on_the_same_database_finds_the_stories(conn):
    """Nothing lives in the process: after a restart, the stories are found at once."""
    text = corpus()[2]
    a = assign(StoryIndex(), conn, item(text, "guid:1"))
    fresh = StoryIndex()
    assert fresh.load(conn, NOW + 5) == 1
    b = assign(fresh, conn, item(VARIANTS["combined"](text, random.Random(2)), "guid:2", "f2"), NOW + 10)
    assert b.story_id == a.story_id and b.reason == "near" and b.similarity >= 0.55


def test_two_instances_on_one_database_share_their_stories(tmp_path):
    """Issue 11: an item polled by instance A finds the story instance B created a second
    earlier (two connections, two indexes: the candidates come from the database)."""
    a_db, b_db = open_state(tmp_path / "shared.db"), open_state(tmp_path / "shared.db")
    try:
        texts = corpus()
        made = assign(StoryIndex(), b_db, item(texts[3], "guid:b1", "feed-b"))
        found = assign(StoryIndex(), a_db, item(VARIANTS["combined"](texts[3], random.Random(9)), "guid:a1",
                                                 "feed-a"), NOW + 1)
        assert found.story_id == made.story_id and found.reason == "near"
    finally:
        a_db.close()
        b_db.close()


def test_rolled_back_story_leaves_nothing_behind(conn):
    idx = StoryIndex()
    texts = corpus()
    with pytest.raises(RuntimeError):
        with conn.transaction():
            idx.assign(conn, item(texts[0], "guid:ghost"), NOW)
            raise RuntimeError("crash before commit")
    assert conn.scalar("SELECT count(*) FROM story_members") == 0
    assert conn.scalar("SELECT count(*) FROM story_bands") == 0
    other = assign(idx, conn, item(texts[3], "guid:other"))
    assert other.new_story
    again = assign(idx, conn, item(VARIANTS["reorder"](texts[0], random.Random(4)), "guid:again", "f2"), NOW + 1)
    assert again.new_story, "a variant of a rolled-back article must not join an unrelated story"
    twin = assign(idx, conn, item(VARIANTS["reorder"](texts[3], random.Random(5)), "guid:twin", "f2"), NOW + 2)
    assert twin.story_id == other.story_id


def test_expired_members_leave_the_index(conn):
    s = DedupSettings(window_hours=1)
    idx = StoryIndex(s)
    for i, text in enumerate(corpus()):
        assign(idx, conn, item(text, f"guid:{i}"))
    assert conn.scalar("SELECT count(*) FROM story_members") == 5
    assert conn.scalar("SELECT count(*) FROM story_bands") == 5 * s.num_perm // 2
    assert StoryIndex(s).load(conn, NOW + 2 * 3600) == 0
    for table in ("story_members", "story_bands", "story_sentences"):
        assert conn.scalar(f"SELECT count(*) FROM {table}") == 0, table
    assert conn.scalar("SELECT count(*) FROM stories") == 5, "stories themselves go with retention, not here"


def test_shingles_are_taken_inside_sentences_and_are_order_sensitive():
    a = fingerprint("قالت مصادر محلية إن قوات سوريا", SEED, 3)
    b = fingerprint("قوات سوريا قالت مصادر محلية إن", SEED, 3)
    assert len(a.shingles) == len(b.shingles) == 4 and len(set(a.shingles.tolist()) & set(b.shingles.tolist())) == 2
    # A sentence boundary: no shingle spans it, each side keeps its own.
    split = fingerprint("قالت مصادر محلية. إن قوات سوريا", SEED, 3)
    assert split.words.tolist() == [3, 3] and split.offsets.tolist() == [0, 1, 2]
    assert set(split.shingles.tolist()) < set(a.shingles.tolist())
    assert len(fingerprint("كلمتان فقط", SEED, 3).shingles) == 1 and len(fingerprint("", SEED, 3).shingles) == 0


def test_reordered_paragraphs_keep_every_shingle():
    text = corpus()[0]
    lines = text.split("\n")
    shuffled = "\n".join([lines[0]] + random.Random(1).sample(lines[1:], len(lines) - 1))
    assert set(fingerprint(text, SEED, 3).shingles.tolist()) == set(fingerprint(shuffled, SEED, 3).shingles.tolist())


@pytest.mark.parametrize("count", [1, 2, 3, 7, 200])
def test_per_sentence_signatures_are_the_minhash_of_each_sentence(count):
    """The signature of any union of sentences is the min of their rows: check each row
    against a direct MinHash of that sentence's shingles, and the union against the whole."""
    rng = random.Random(count)
    sentences = [[f"كلمة{rng.randrange(60)}" for _ in range(rng.randint(1, 9))] for _ in range(count)]
    text = "\n".join(" ".join(words) for words in sentences)
    fp = fingerprint(text, SEED, 3)
    perms = permutations(64)
    rows = sentence_signatures(fp, perms)
    assert rows.shape == (count, 64) and rows.dtype == np.uint32

    def direct(hashes):
        hv = np.asarray(sorted(set(hashes.tolist())), dtype=np.uint64).reshape(-1, 1)
        hv ^= hv >> np.uint64(16)
        hv = (hv * np.uint64(0x85EBCA6B)) & np.uint64(0xFFFFFFFF)
        hv ^= hv >> np.uint64(13)
        hv = (hv * np.uint64(0xC2B2AE35)) & np.uint64(0xFFFFFFFF)
        hv ^= hv >> np.uint64(16)
        a, b = (p.astype(np.uint64) for p in perms)
        return ((hv * a + b) & np.uint64(0xFFFFFFFF)).min(axis=0).astype(np.uint32)

    for i in range(count):
        assert rows[i].tolist() == direct(fp.shingles[fp.offsets[i]:fp.offsets[i + 1]]).tolist()
    assert rows.min(axis=0).tolist() == direct(fp.shingles).tolist()


def test_band_keys_are_31_bit_and_equal_exactly_where_the_bands_are():
    rng = np.random.default_rng(3)
    sig = rng.integers(0, 2**32, size=128, dtype=np.uint32)
    other = sig.copy()
    other[10:] = rng.integers(0, 2**32, size=118, dtype=np.uint32)  # bands 0-4 kept
    keys, other_keys = band_keys(sig), band_keys(other)
    assert len(keys) == 64 and keys.min() >= 0 and keys.max() < 2**31
    assert (keys == other_keys).tolist() == [True] * 5 + [False] * 59
    swapped = sig.copy()
    swapped[[0, 2]] = swapped[[2, 0]]  # same values in other bands: other keys (the band number is mixed in)
    assert band_keys(swapped)[0] != keys[0] and band_keys(swapped)[1] != keys[1]


def test_shingle_hashes_of_a_short_sentence_cover_all_its_words():
    two = shingle_hashes([["أ", "ب"]], 3)[0]
    assert len(two) == 1 and two[0] != shingle_hashes([["ب", "أ"]], 3)[0][0]


def test_sources_counts_distinct_feeds_incrementally(conn):
    index = StoryIndex(DedupSettings())
    now = 1_000.0
    text = "قالت مصادر محلية إن قوات سوريا الديمقراطية سيطرت على حقل العمر النفطي في ريف دير الزور الشرقي اليوم"
    with conn.transaction():
        first = index.assign(conn, Item("a", "guid:a1", text, link="https://a.example/1"), now)
        for feed, key in [("a", "guid:a2"), ("b", "guid:b1"), ("b", "guid:b2"), ("a", "guid:a1"), ("c", "guid:c1")]:
            assert index.assign(conn, Item(feed, key, text), now).story_id == first.story_id
    sources = conn.execute("SELECT sources FROM stories WHERE id = ?", (first.story_id,)).fetchone()[0]
    recount = conn.execute("SELECT count(DISTINCT feed) FROM story_items WHERE story_id = ?",
                           (first.story_id,)).fetchone()[0]
    assert sources == recount == 3
