"""Labelled evaluation set: precision and recall per entity >= 0.97 with the default pack.

Run ``python tests/test_eval.py`` to print the per-entity table.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.rules import load_rules

ROOT = Path(__file__).resolve().parent.parent
EVAL = Path(__file__).parent / "data" / "eval" / "eval.tsv"
SCORED = ["bukamal", "qasad", "omar_field", "deir_ez_zor", "mayadin", "isis", "qaim", "raqqa", "busayrah",
          "shaddadi", "suheil_hassan", "hasakah", "sukhnah", "jazira_storm", "deir_military_council", "maghawir"]
TARGET = 0.97


def load_cases() -> list[tuple[int, set[str], str]]:
    cases = []
    for n, line in enumerate(EVAL.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        labels, text = line.split("\t", 1)
        expected = set() if labels == "-" else set(labels.split(","))
        cases.append((n, expected, text.replace("\\n", "\n")))
    return cases


def score(ruleset) -> tuple[dict[str, tuple[int, int, int]], list[str]]:
    counts = {e: [0, 0, 0] for e in SCORED}  # tp, fp, fn
    mistakes = []
    for n, expected, text in load_cases():
        got = set(ruleset.evaluate(title="", body=text).entities) & set(SCORED)
        for e in SCORED:
            if e in got and e in expected:
                counts[e][0] += 1
            elif e in got:
                counts[e][1] += 1
                mistakes.append(f"line {n}: false {e}: {text}")
            elif e in expected:
                counts[e][2] += 1
                mistakes.append(f"line {n}: missed {e}: {text}")
    return {e: tuple(c) for e, c in counts.items()}, mistakes


def table(counts) -> str:
    rows = ["| entity | tp | fp | fn | precision | recall |", "|---|---|---|---|---|---|"]
    for e, (tp, fp, fn) in counts.items():
        p = tp / (tp + fp) if tp + fp else 1.0
        r = tp / (tp + fn) if tp + fn else 1.0
        rows.append(f"| {e} | {tp} | {fp} | {fn} | {p:.3f} | {r:.3f} |")
    return "\n".join(rows)


@pytest.fixture(scope="module")
def scored():
    return score(load_rules([ROOT / "rules"]))


def test_eval_set_is_big_enough_and_has_negatives():
    cases = load_cases()
    assert len(cases) >= 150
    assert sum(1 for _, exp, _ in cases if not exp) >= 50


def test_every_scored_entity_has_positives(scored):
    counts, _ = scored
    assert all(tp + fn > 0 for tp, _, fn in counts.values())


def test_precision_and_recall_per_entity(scored):
    counts, mistakes = scored
    low = []
    for e, (tp, fp, fn) in counts.items():
        p = tp / (tp + fp) if tp + fp else 1.0
        r = tp / (tp + fn) if tp + fn else 1.0
        if p < TARGET or r < TARGET:
            low.append(f"{e}: precision {p:.3f} recall {r:.3f}")
    assert not low, "\n".join(low + mistakes + [table(counts)])


if __name__ == "__main__":
    counts, mistakes = score(load_rules([ROOT / "rules"]))
    print(f"{len(load_cases())} labelled texts")
    print(table(counts))
    print("\n".join(mistakes))
