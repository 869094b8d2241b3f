"""Dedup into stories: exact keys, near duplicates, window, rollback safety."""

from __future__ import annotations

import itertools
import random

import pytest
from dedup_variants import VARIANTS, corpus, labelled_stream

from monitor.feeds.links import canonical_url
from monitor.state import open_state
from monitor.stories.index import StoryIndex, fingerprint
from monitor.stories.settings import DedupSettings
from monitor.types import Item

NOW = 1_800_000_000.0


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
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    print(f"merge precision={precision:.3f} recall={recall:.3f} pairs tp={tp} fp={fp} fn={fn}")
    assert precision == 1.0
    assert recall == 1.0


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
    assert fingerprint("أ ب", DedupSettings()).words == 2


def test_window_expiry_makes_a_new_story(conn):
    s = DedupSettings(window_hours=1)
    idx = StoryIndex(s)
    text = corpus()[1]
    a = assign(idx, conn, item(text, "guid:1"))
    b = assign(idx, conn, item(VARIANTS["reorder"](text, random.Random(1)), "guid:2"), NOW + 2 * 3600)
    assert b.new_story and b.story_id != a.story_id


def test_load_rebuilds_index_after_restart(conn):
    text = corpus()[2]
    a = assign(StoryIndex(), conn, item(text, "guid:1"))
    fresh = StoryIndex()
    assert fresh.load(conn, NOW + 5) == 1
    b = assign(fresh, conn, item(VARIANTS["combined"](text, random.Random(2)), "guid:2"), NOW + 10)
    assert b.story_id == a.story_id and b.reason == "near" and b.similarity >= 0.4


def test_rolled_back_story_leaves_no_phantom(conn):
    idx = StoryIndex()
    texts = corpus()
    with pytest.raises(RuntimeError):
        with conn.transaction():
            idx.assign(conn, item(texts[0], "guid:ghost"), NOW)
            raise RuntimeError("crash before commit")
    # The id the ghost had is reused by an unrelated story: no false merge.
    other = assign(idx, conn, item(texts[3], "guid:other"))
    assert other.new_story
    again = assign(idx, conn, item(VARIANTS["reorder"](texts[0], random.Random(4)), "guid:again"), NOW + 1)
    assert again.new_story, "a variant of a rolled-back article must not join an unrelated story"
    twin = assign(idx, conn, item(VARIANTS["reorder"](texts[3], random.Random(5)), "guid:twin"), NOW + 2)
    assert twin.story_id == other.story_id


@pytest.mark.parametrize("count", [0, 1, 3, 200])
def test_signature_is_datasketch_minhash_bit_for_bit(count):
    # The LSH and jaccard are datasketch's: StoryIndex computes the affine32 MinHash of the
    # 32-bit shingle hashes itself (numpy) and must agree with datasketch exactly.
    from datasketch import MinHash

    index = StoryIndex(DedupSettings())
    rng = random.Random(count)
    words = [f"كلمة{rng.randrange(60)}" for _ in range(count + 2)] if count else []
    shingles = fingerprint(" ".join(words), index.settings).shingles
    assert len(shingles) == len({tuple(words[i:i + 3]) for i in range(len(words) - 2)})  # no collisions here
    reference = MinHash(num_perm=index.settings.num_perm, scheme="affine32", hashfunc=int)
    reference.update_batch(shingles.tolist())
    signature = index.signature(shingles)
    assert signature.dtype == reference.hashvalues.dtype
    assert signature.tolist() == reference.hashvalues.tolist()
    assert index.minhash(shingles).jaccard(reference) == 1.0


def test_shingle_hashes_are_order_sensitive_and_stable():
    settings = DedupSettings()
    a = fingerprint("قالت مصادر محلية إن قوات سوريا", settings).shingles
    b = fingerprint("قوات سوريا قالت مصادر محلية إن", settings).shingles
    assert len(a) == len(b) == 4 and len(set(a.tolist()) & set(b.tolist())) == 2  # 2 shingles in common
    assert fingerprint("قالت مصادر محلية إن قوات سوريا", settings).shingles.tolist() == a.tolist()
    assert len(fingerprint("كلمتان فقط", settings).shingles) == 1 and len(fingerprint("", settings).shingles) == 0


def test_lsh_query_shortcut_finds_what_datasketch_query_finds():
    index = StoryIndex(DedupSettings())
    rng = random.Random(7)
    vocab = [f"كلمة{i}" for i in range(300)]
    texts = [[rng.choice(vocab) for _ in range(40)] for _ in range(200)]
    for i, words in enumerate(texts):
        index._index(i, index.minhash(fingerprint(" ".join(words), index.settings).shingles), 0.0)
    found = 0
    for words in texts[:50]:
        probe = words[:30] + [rng.choice(vocab) for _ in range(10)]  # a 75% copy
        sig = index.signature(fingerprint(" ".join(probe), index.settings).shingles)
        expected = set(index._lsh.query(index._lean(sig)))
        assert set(index._query(sig)) == expected
        found += bool(expected)
    assert found >= 40  # the probes do find their originals


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
