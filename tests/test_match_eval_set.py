"""Integrity of the constructed matching evaluation set (tests/data/match_eval), not the matcher's quality.

The figures come from ``bench/bench_match_eval.py``; here only what makes them meaningful: the set
parses, its labels are known entities, both splits cover every kind and every ambiguous alias has
hard negatives in both, and no text comes from the real-news set (read in place when present).
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data" / "match_eval"
SPLITS = ("dev", "heldout")
ENTITIES = {"bukamal", "qasad", "omar_field", "deir_ez_zor", "mayadin", "isis", "qaim", "raqqa", "busayrah",
            "shaddadi", "suheil_hassan"}
FIELDS = {"id", "text", "entities", "kind", "note"}
# hard-negative group (kind neg_<group>_<sense>) -> the entity its alias would wrongly count as
AMBIGUOUS = {"mayadin": "mayadin", "omar": "omar_field", "nimr": "suheil_hassan", "busayrah": "busayrah",
             "qaim": "qaim", "raqqa": "raqqa", "shaddadi": "shaddadi", "bukamal": "bukamal",
             "dir": "deir_ez_zor", "sdf": "qasad", "isis": "isis"}
# the variant kinds issue 14 names, each of which must be in the set
REQUIRED_KINDS = {"pos_hamza", "pos_dropped", "pos_sdf_forms", "pos_daesh_derived", "pos_dawla_short",
                  "pos_proclitic", "pos_hashtag", "pos_bidi", "pos_zero_width", "pos_glued", "pos_diacritics",
                  "pos_tatweel", "pos_persian", "pos_ya", "pos_ta", "pos_latin", "pos_bare", "pos_aldir",
                  "pos_nimr", "pos_multi", "neg_mayadin_channel", "neg_mayadin_squares", "neg_omar_age",
                  "neg_nimr_tiger", "neg_nimr_person", "neg_busayrah_insight", "neg_qaim_incharge",
                  "neg_raqqa_tenderness", "neg_sdf_acronym", "neg_isis_acronym", "neg_sdf_council",
                  "neg_dir_demonym", "neg_raqqa_demonym", "neg_isis_anaphor", "neg_shaddadi_surname",
                  "neg_bukamal_kunya", "neg_dir_monastery"}
REAL_NEWS = Path(os.environ.get("MONITOR_REAL_NEWS")
                 or Path(__file__).resolve().parents[2] / "shared" / "corpora" / "real-news" / "dev.jsonl")


@dataclass(frozen=True)
class Row:
    id: str
    text: str
    entities: list[str]
    kind: str
    note: str


def _read(split: str) -> list[Row]:
    """Every line as a Row; a malformed line fails naming file, line and field."""
    rows = []
    path = DATA / f"{split}.jsonl"
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        where = f"{path}:{lineno}"
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            pytest.fail(f"{where}: not valid JSON ({exc.msg})")
        assert isinstance(raw, dict) and set(raw) == FIELDS, f"{where}: fields must be exactly {sorted(FIELDS)}"
        for name in ("id", "text", "kind", "note"):
            assert isinstance(raw[name], str) and raw[name].strip(), \
                f"{where}: field {name!r} must be a non-empty string"
        labels = raw["entities"]
        assert isinstance(labels, list) and all(isinstance(e, str) for e in labels), \
            f"{where}: field 'entities' must be a list of ids"
        rows.append(Row(raw["id"], raw["text"], labels, raw["kind"], raw["note"]))
    return rows


@pytest.fixture(scope="module")
def splits() -> dict[str, list[Row]]:
    return {s: _read(s) for s in SPLITS}


def _kinds(rows: list[Row]) -> set[str]:
    return {r.kind for r in rows}


def test_every_case_is_well_formed(splits: dict[str, list[Row]]) -> None:
    for split, rows in splits.items():
        for r in rows:
            where = f"{split} {r.id}"
            assert set(r.entities) <= ENTITIES, f"{where}: unknown entity ids {set(r.entities) - ENTITIES}"
            assert r.entities == sorted(set(r.entities)), f"{where}: entities must be sorted and unique"
            assert re.fullmatch(r"(pos|neg)_[a-z_]+", r.kind), f"{where}: bad kind {r.kind!r}"
            if r.kind.startswith("pos_"):
                assert r.entities, f"{where}: a positive case must mention an entity"


def test_ids_and_texts_are_unique_across_splits(splits: dict[str, list[Row]]) -> None:
    rows = [r for s in SPLITS for r in splits[s]]
    for name in ("id", "text"):
        dups = [v for v, n in Counter(getattr(r, name) for r in rows).items() if n > 1]
        assert not dups, f"duplicate {name}s: {dups[:5]}"


def test_set_is_large_enough_and_split_about_60_40(splits: dict[str, list[Row]]) -> None:
    n_dev, n_held = len(splits["dev"]), len(splits["heldout"])
    assert n_dev + n_held >= 400, f"only {n_dev + n_held} cases"
    assert 0.5 <= n_dev / (n_dev + n_held) <= 0.7, f"dev {n_dev} / heldout {n_held} is not about 60/40"


def test_every_kind_is_in_both_splits(splits: dict[str, list[Row]]) -> None:
    dev, held = _kinds(splits["dev"]), _kinds(splits["heldout"])
    assert dev == held, f"only in dev: {dev - held}; only in heldout: {held - dev}"
    assert REQUIRED_KINDS <= dev, f"missing kinds: {REQUIRED_KINDS - dev}"


def test_every_entity_has_positives_in_both_splits(splits: dict[str, list[Row]]) -> None:
    for split, rows in splits.items():
        seen = {e for r in rows for e in r.entities}
        assert seen == ENTITIES, f"{split}: no positive for {ENTITIES - seen}"


def test_every_ambiguous_alias_has_hard_negatives_in_both_splits(splits: dict[str, list[Row]]) -> None:
    for split, rows in splits.items():
        groups: Counter[str] = Counter()
        for r in rows:
            if not r.kind.startswith("neg_"):
                continue
            group = r.kind.split("_")[1]
            assert group in AMBIGUOUS, f"{split} {r.id}: unknown hard-negative group {group!r}"
            assert AMBIGUOUS[group] not in r.entities, \
                f"{split} {r.id}: a {r.kind} case must not be labelled {AMBIGUOUS[group]}"
            groups[group] += 1
        assert set(groups) == set(AMBIGUOUS), f"{split}: no hard negatives for {set(AMBIGUOUS) - set(groups)}"


@pytest.mark.skipif(not REAL_NEWS.is_file(), reason=f"real-news set not present at {REAL_NEWS}")
def test_no_text_comes_from_the_real_news_set(splits: dict[str, list[Row]]) -> None:
    """Exact texts and any shared sentence of 40+ characters: the set must be our own writing."""
    real = [json.loads(line)["text"] for line in REAL_NEWS.read_text(encoding="utf-8").splitlines() if line.strip()]
    squash = re.compile(r"\s+")
    real_flat = [squash.sub(" ", t) for t in real]
    for split, rows in splits.items():
        for r in rows:
            text = squash.sub(" ", r.text)
            sentences = [s.strip() for s in re.split(r"[.!؟?؛\n]", text) if len(s.strip()) >= 40]
            for rt in real_flat:
                assert text not in rt and rt not in text, f"{split} {r.id} overlaps a real-news text"
                for s in sentences:
                    assert s not in rt, f"{split} {r.id} shares a sentence with a real-news text"
