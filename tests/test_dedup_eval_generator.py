"""The story-dedup evaluation generator (bench/dedup_eval/generate.py).

What the benchmark's figures rest on: the same seed gives the same set; ``dev`` and ``heldout``
share no source text and no furniture; both have every kind and enough pairs; the ground truth is
consistent (and puts each original on the earliest outlet of its cluster, which the arrival orders
rely on); the generator writes only where it is told, and no real-news text sits in the repository.
No quality thresholds: those are measured by bench/bench_dedup_eval.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from dedup_eval.generate import (
    DISTINCT_PAIR_KINDS,
    DUPLICATE_PAIR_KINDS,
    ITEM_KINDS,
    NOISE_KINDS,
    ORIGINAL_KINDS,
    REAL_NEWS_ENV,
    SPLITS,
    EvalSet,
    SourceError,
    find_real_news,
    generate,
    load_sources,
    load_templates,
    main,
    read_real_news,
)

try:
    REAL_NEWS: Path | None = find_real_news()
except SourceError:
    REAL_NEWS = None

needs_real_news = pytest.mark.skipif(REAL_NEWS is None, reason="../shared/corpora/real-news/dev.jsonl not present")


@pytest.fixture(scope="module")
def sets() -> dict[str, EvalSet]:
    if REAL_NEWS is None:
        pytest.skip("../shared/corpora/real-news/dev.jsonl not present")
    return {split: generate(13, split) for split in SPLITS}


def _fold(text: str) -> str:
    """Spelling-insensitive form for comparing texts: no marks, tatweel, letter or digit variants, punctuation."""
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    folding = str.maketrans("أإآىةیک٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹", "ااايهيك01234567890123456789")
    text = text.replace("\u0640", "").translate(folding)
    return " ".join(re.findall(r"\w+", text))


@needs_real_news
def test_same_seed_gives_the_same_set_and_another_seed_another() -> None:
    first, again = generate(13, "dev"), generate(13, "dev")
    assert first == again
    other = generate(14, "dev")
    assert [i.body for i in other.items] != [i.body for i in first.items]


def test_splits_share_no_source_text_and_use_all_of_it() -> None:
    if REAL_NEWS is None:
        pytest.skip("../shared/corpora/real-news/dev.jsonl not present")
    sources = {split: load_sources(split, REAL_NEWS) for split in SPLITS}
    origins = {split: {s.origin for s in (src.long + src.briefs + src.pool)} for split, src in sources.items()}
    units = {split: {u for s in (src.long + src.briefs + src.pool) for u in s.units} for split, src in sources.items()}
    assert not origins["dev"] & origins["heldout"]
    assert not units["dev"] & units["heldout"]
    pages = {url for url, _ in read_real_news(REAL_NEWS)}
    corpus = {p.name for p in (ROOT / "tests" / "data" / "corpus").glob("*.txt")}
    assert origins["dev"] | origins["heldout"] == pages | corpus


def test_items_of_a_split_come_only_from_its_sources(sets: dict[str, EvalSet]) -> None:
    assert REAL_NEWS is not None
    for split, eval_set in sets.items():
        src = load_sources(split, REAL_NEWS)
        allowed = {u for s in (src.long + src.briefs + src.pool) for u in s.units}
        assert {u for item in eval_set.items for u in item.sources} <= allowed


def test_splits_share_no_furniture_footer_or_stock_sentence(sets: dict[str, EvalSet]) -> None:
    strings = {split: {_fold(t) for o in s.outlets for t in o.template_strings()} | {_fold(t) for t in s.stock}
               for split, s in sets.items()}
    strings = {split: {t for t in found if t} for split, found in strings.items()}
    assert not strings["dev"] & strings["heldout"]
    assert not {o.feed for o in sets["dev"].outlets} & {o.feed for o in sets["heldout"].outlets}
    # and no furniture of one split leaks into the other's items (long templates: short ones such as
    # "للأعلى" are ordinary words)
    for split, other in (("dev", "heldout"), ("heldout", "dev")):
        texts = " ".join(_fold(item.text) for item in sets[other].items)
        leaked = [t for t in strings[split] if len(t.split()) >= 4 and t in texts]
        assert not leaked, (split, leaked[:3])


def test_the_templates_file_holds_six_outlets_per_split() -> None:
    templates = load_templates()
    for split in SPLITS:
        outlets = templates.splits[split].outlets
        assert len({o.feed for o in outlets}) == 6
        for outlet in outlets:
            assert 80 <= len(outlet.footer.split()) <= 120, outlet.feed


@pytest.mark.parametrize("seed", [13, 7])
def test_each_split_has_enough_pairs(seed: int) -> None:
    if REAL_NEWS is None:
        pytest.skip("../shared/corpora/real-news/dev.jsonl not present")
    for split in SPLITS:
        eval_set = generate(seed, split)
        assert len(eval_set.duplicate_pairs) >= 90, split
        assert len(eval_set.distinct_pairs) >= 130, split


def test_every_kind_is_present_in_both_splits(sets: dict[str, EvalSet]) -> None:
    for split, eval_set in sets.items():
        assert {i.kind for i in eval_set.items} == set(ITEM_KINDS), split
        assert {p.kind for p in eval_set.duplicate_pairs} == set(DUPLICATE_PAIR_KINDS), split
        assert {p.kind for p in eval_set.distinct_pairs} == set(DISTINCT_PAIR_KINDS), split
        assert {k for i in eval_set.items for k in i.noise} == set(NOISE_KINDS), split
        assert all(i.noise for i in eval_set.items), "cosmetic noise on every item"


def test_ground_truth_is_consistent(sets: dict[str, EvalSet]) -> None:
    for eval_set in sets.values():
        by_guid = {i.guid: i for i in eval_set.items}
        assert len(by_guid) == len(eval_set.items)
        assert len({i.link for i in eval_set.items}) == len(eval_set.items)
        for pair in eval_set.duplicate_pairs:
            assert by_guid[pair.first].cluster == by_guid[pair.second].cluster
        for pair in eval_set.distinct_pairs:
            assert by_guid[pair.first].cluster != by_guid[pair.second].cluster
        assert len({frozenset((p.first, p.second)) for p in eval_set.distinct_pairs}) == len(eval_set.distinct_pairs)
        rank = {o.feed: n for n, o in enumerate(eval_set.outlets)}
        for guids in eval_set.clusters().values():
            members = [by_guid[g] for g in guids]
            outlets = [rank[m.outlet] for m in members]
            assert len(set(outlets)) == len(outlets), "a cluster's members are on distinct outlets"
            original = [m for m in members if m.kind in ORIGINAL_KINDS]
            assert len(original) == 1 and rank[original[0].outlet] == min(outlets)
        for pair in (p for p in eval_set.distinct_pairs if p.kind == "quoted_headline"):
            a, b = by_guid[pair.first], by_guid[pair.second]
            quoting, target = (a, b) if a.quotes == b.guid else (b, a)
            assert quoting.quotes == target.guid
            title_words = _fold(target.title).split()
            text_words = set(_fold(quoting.text).split())
            assert sum(w in text_words for w in title_words) >= 0.8 * len(title_words), "the headline is quoted"


def _repo_files() -> dict[Path, float]:
    skip = {".git", "__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache", ".venv", ".hypothesis"}
    return {p: p.stat().st_mtime for p in ROOT.rglob("*")
            if p.is_file() and not skip & set(p.relative_to(ROOT).parts)}


@needs_real_news
def test_generator_writes_only_where_told(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = _repo_files()
    generate(13, "heldout")
    assert main([str(tmp_path / "out"), "--split", "dev"]) == 0
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "default-tmp"))
    (tmp_path / "default-tmp").mkdir()
    assert main(["--split", "heldout"]) == 0
    assert _repo_files() == before
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert "out/dev/items.jsonl" in written and "out/dev/pairs.jsonl" in written
    assert any(w.startswith("default-tmp/dedup-eval-") and w.endswith("heldout/items.jsonl") for w in written)
    assert all(w.startswith(("out/dev/", "default-tmp/")) for w in written)
    rows = [json.loads(line) for line in (tmp_path / "out" / "dev" / "items.jsonl").read_text("utf-8").splitlines()]
    assert len(rows) == len(generate(13, "dev").items)


@needs_real_news
def test_no_real_news_text_is_committed() -> None:
    assert REAL_NEWS is not None
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=False)
    if listed.returncode:
        pytest.skip("not a git checkout")
    tracked = []
    for name in listed.stdout.decode().split("\0"):
        try:
            tracked.append((ROOT / name).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            continue
    blob = " ".join(" ".join(tracked).split())
    for _, rows in read_real_news(REAL_NEWS):
        for row_id, text in rows:
            if len(text) >= 60:
                middle = len(text) // 2
                assert text[middle - 20:middle + 20] not in blob, f"real-news paragraph {row_id} is in the repository"


def test_bad_real_news_line_is_reported_with_file_line_and_field(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "dev.jsonl"
    bad.write_text('{"id": "x1", "source": "https://a.example/1", "text": "نص"}\n{"id": "x2", "source": "s"}\n',
                   encoding="utf-8")
    with pytest.raises(SourceError, match=rf"{re.escape(str(bad))}:2: field 'text'"):
        read_real_news(bad)
    assert main([str(tmp_path / "out"), "--real-news", str(bad)]) == 2
    assert f"{bad}:2: field 'text'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_real_news_location_can_be_given_by_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chosen = tmp_path / "elsewhere.jsonl"
    chosen.write_text("", encoding="utf-8")
    monkeypatch.setenv(REAL_NEWS_ENV, str(chosen))
    assert find_real_news() == chosen
    monkeypatch.setenv(REAL_NEWS_ENV, str(tmp_path / "missing.jsonl"))
    with pytest.raises(SourceError, match="missing.jsonl"):
        find_real_news()
