"""Pair scores of a story assignment against the generated ground truth.

Pair recall: the share of duplicate pairs whose two items ended in the same story. False-merge
rate: the share of distinct pairs whose two items ended in the same story. Both per pair kind, and
the false merges also over every pair of items from different clusters (not only the chosen ones).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

from dedup_eval.generate import EvalSet, Pair


@dataclass(frozen=True)
class Tally:
    """``hits`` of ``pairs`` ended in the same story."""

    pairs: int
    hits: int

    @property
    def rate(self) -> float:
        return self.hits / self.pairs if self.pairs else 0.0


@dataclass(frozen=True)
class Score:
    duplicates: Tally
    distinct: Tally
    all_distinct: Tally                    # every cross-cluster pair
    duplicates_by_kind: dict[str, Tally]
    distinct_by_kind: dict[str, Tally]
    stories: int                           # stories the items went into
    clusters: int                          # true clusters
    unassigned: tuple[str, ...]            # guids the daemon put in no story

    @property
    def recall(self) -> float:
        return self.duplicates.rate

    @property
    def false_merge_rate(self) -> float:
        return self.distinct.rate


def _tally(pairs: Iterable[Pair], story_of: Mapping[str, int]) -> tuple[Tally, dict[str, Tally]]:
    totals: dict[str, list[int]] = {}
    for pair in pairs:
        a, b = story_of.get(pair.first), story_of.get(pair.second)
        counts = totals.setdefault(pair.kind, [0, 0])
        counts[0] += 1
        counts[1] += int(a is not None and a == b)
    by_kind = {kind: Tally(n, hits) for kind, (n, hits) in sorted(totals.items())}
    return Tally(sum(t.pairs for t in by_kind.values()), sum(t.hits for t in by_kind.values())), by_kind


def score(eval_set: EvalSet, story_of: Mapping[str, int]) -> Score:
    """Score ``story_of`` (guid -> story id); an item missing from it counts as a story of its own."""
    duplicates, duplicates_by_kind = _tally(eval_set.duplicate_pairs, story_of)
    distinct, distinct_by_kind = _tally(eval_set.distinct_pairs, story_of)
    cross = [Pair(a.guid, b.guid, "all") for a, b in combinations(eval_set.items, 2) if a.cluster != b.cluster]
    all_distinct, _ = _tally(cross, story_of)
    guids = [item.guid for item in eval_set.items]
    return Score(duplicates, distinct, all_distinct, duplicates_by_kind, distinct_by_kind,
                 stories=len({story_of[g] for g in guids if g in story_of}) + sum(g not in story_of for g in guids),
                 clusters=len(eval_set.clusters()), unassigned=tuple(g for g in guids if g not in story_of))


def pool(scores: Sequence[Score]) -> Score:
    """Several scores (e.g. one per seed) as one: the pairs and stories added up."""
    def added(tallies: Iterable[Tally]) -> Tally:
        found = list(tallies)
        return Tally(sum(t.pairs for t in found), sum(t.hits for t in found))

    def by_kind(maps: Sequence[Mapping[str, Tally]]) -> dict[str, Tally]:
        kinds = sorted({k for m in maps for k in m})
        return {k: added(m[k] for m in maps if k in m) for k in kinds}

    return Score(added(s.duplicates for s in scores), added(s.distinct for s in scores),
                 added(s.all_distinct for s in scores), by_kind([s.duplicates_by_kind for s in scores]),
                 by_kind([s.distinct_by_kind for s in scores]), sum(s.stories for s in scores),
                 sum(s.clusters for s in scores), tuple(g for s in scores for g in s.unassigned))

