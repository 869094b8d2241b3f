"""Which stories an item's content belongs to: containment against every candidate member.

A story is a cluster of members; an item joins the story of ANY member it matches, and when
it matches members of several stories those stories were one all along and are merged (a
60 % excerpt and a copy missing a paragraph meet through their original, whichever of the
three came first). That is single linkage: the stories are the connected parts of the
"is a copy of" relation, whatever the order the copies arrive in.

Similarity is containment, relative to the shorter text: ``|A ∩ B| / min(|A|, |B|)`` over
content shingles. Two kinds of shared sentences are not evidence that two texts are one story:

* stock text: a sentence the item shares with a candidate story that also appears in some
  other live story the item does *not* resemble (or in many other stories) is background
  both took from elsewhere;
* furniture not learned yet: when the item and the candidate come from the same feed and
  share some sentences word for word while the rest of each is unrelated, those sentences
  are the site's (two briefs under one footer). They are reported back, and remembered as the
  feed's furniture (``monitor.stories.furniture``).

Pure numpy over values read from the state by ``monitor.stories.index``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.typing import NDArray

from monitor.stories.fingerprint import Fingerprint, band_keys

__all__ = ["Content", "Candidate", "Decision", "content_of", "decide", "STOCK_MIN_WORDS"]

#: Shorter sentences are too common to say anything as stock text ("وأضاف", a place name).
STOCK_MIN_WORDS = 6
#: A sentence this many other live stories carry is stock text, whatever the item resembles.
WIDESPREAD = 3

_EMPTY = np.empty(0, dtype=np.uint32)


def _unique(values: NDArray[np.uint32]) -> NDArray[np.uint32]:
    """Sorted distinct values (``np.unique`` without its generality: ~3x faster on short arrays)."""
    if values.size < 2:
        return values.copy()
    ordered = np.sort(values)
    keep = np.empty(len(ordered), dtype=np.bool_)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


def _in_sorted(values: NDArray[np.uint32], sorted_set: NDArray[np.uint32]) -> NDArray[np.bool_]:
    """For each of ``values``: is it in ``sorted_set`` (sorted, distinct)? A binary search each."""
    if not sorted_set.size or not values.size:
        return np.zeros(len(values), dtype=np.bool_)
    at = np.searchsorted(sorted_set, values)
    at[at == len(sorted_set)] = 0
    found: NDArray[np.bool_] = sorted_set[at] == values
    return found


@dataclass(frozen=True)
class Content:
    """What remains of an item once its furniture is out: the sentences kept (indexes into
    the fingerprint), their distinct shingles (sorted), their MinHash signature and its LSH
    band keys; and the shingles of the furniture left out (a member stored before its feed's
    furniture was learned still holds them: they are not counted in its size either)."""

    fingerprint: Fingerprint
    kept: NDArray[np.int64]
    shingles: NDArray[np.uint32]
    signature: NDArray[np.uint32] | None
    words: int
    furniture: NDArray[np.uint32]
    bands: tuple[int, ...]

    def sentence_shingles(self, indexes: Sequence[int]) -> NDArray[np.uint32]:
        """Distinct shingles of the given sentences (indexes into the fingerprint)."""
        offsets = self.fingerprint.offsets
        pieces = [self.fingerprint.shingles[offsets[i]:offsets[i + 1]] for i in indexes]
        return _unique(np.concatenate(pieces)) if pieces else _EMPTY

    @cached_property  # three readers per item: the decision, the candidate lookup, the record
    def stock_candidates(self) -> list[tuple[int, int]]:
        """(sentence index, tail hash) of the kept sentences long enough to be stock text, or to
        find the stories that carry them (``story_sentences`` holds tail hashes)."""
        fp = self.fingerprint
        return [(int(i), int(fp.tails[i])) for i in self.kept if fp.words[i] >= STOCK_MIN_WORDS]


def content_of(fp: Fingerprint, signatures: NDArray[np.uint32], furniture: NDArray[np.bool_]) -> Content:
    """The content of a fingerprinted text without the sentences marked ``furniture``."""
    kept = np.flatnonzero(~furniture).astype(np.int64)
    offsets = fp.offsets
    left_out = [fp.shingles[offsets[i]:offsets[i + 1]] for i in np.flatnonzero(furniture)]
    furniture_shingles = _unique(np.concatenate(left_out)) if left_out else _EMPTY
    if not kept.size:
        return Content(fp, kept, _EMPTY, None, 0, furniture_shingles, ())
    if kept.size == len(fp):
        shingles = _unique(fp.shingles)
    else:
        shingles = _unique(np.concatenate([fp.shingles[offsets[i]:offsets[i + 1]] for i in kept]))
        furniture_shingles = furniture_shingles[~_in_sorted(furniture_shingles, shingles)]
    signature: NDArray[np.uint32] = signatures[kept].min(axis=0)
    return Content(fp, kept, shingles, signature, int(fp.words[kept].sum()), furniture_shingles,
                   tuple(band_keys(signature).tolist()))


@dataclass(frozen=True)
class Candidate:
    """A stored member of a live story: its feed, content shingles (sorted, distinct) and the
    hashes of its content sentences."""

    story_id: int
    feed: str
    shingles: NDArray[np.uint32]
    sentences: NDArray[np.int64]


@dataclass(frozen=True)
class Decision:
    """The story the item joins (None: a new one), its containment there, the stories merged
    into it, the share of the item's content its closest member already holds (an item that
    is little more than a member adds nothing to the index), and the item's sentences found
    to be its feed's furniture."""

    story_id: int | None
    similarity: float | None = None
    merged: tuple[int, ...] = ()
    covered: float = 0.0
    furniture: frozenset[int] = frozenset()


@dataclass(frozen=True)
class _Scored:
    candidate: Candidate
    shared: NDArray[np.uint32]
    score: float
    size: int  # the candidate's shingles, less the item's furniture it holds


def _stock(others: set[int], related: set[int]) -> bool:
    """Is a sentence that these other live stories also carry stock text?

    Yes when ``WIDESPREAD`` other stories carry it, or one the item does not resemble does.
    Not when only stories the item also matches carry it: those are copies of one story that
    arrived split (an excerpt and a copy missing a paragraph) and the item merges them.
    """
    return len(others) >= WIDESPREAD or bool(others - related)


def _containment(shared: int, a: int, b: int) -> float:
    shorter = min(a, b)
    return shared / shorter if shorter > 0 else 0.0


def _same_feed(content: Content, cand: Candidate, size: int, shared: NDArray[np.uint32], *, threshold: float,
               min_shared: int) -> tuple[NDArray[np.uint32], float, frozenset[int]] | None:
    """Containment of what two items of one feed do not share word for word, and the shared
    sentences when that rest is unrelated (None: no sentence in common, or one text is little
    more than the other's sentences: then those sentences are the story itself).

    Only within one feed: a site repeating its own sentences is the usual case there, while
    across feeds sentences shared word for word are the usual sign of a copy (whose rest is
    often the other site's unlearned furniture: related links, a byline).
    """
    hashes = content.fingerprint.hashes
    kept = content.kept
    common = kept[np.isin(hashes[kept], cand.sentences)].tolist()
    if not common:
        return None
    verbatim = content.sentence_shingles(common)
    in_verbatim = _in_sorted(shared, verbatim)
    rest_q = len(content.shingles) - len(verbatim)
    rest_m = size - int(in_verbatim.sum())
    if rest_q < min_shared or rest_m < min_shared:
        return None
    rest = shared[~in_verbatim]
    score = _containment(len(rest), rest_q, rest_m)
    furniture = frozenset(int(hashes[i]) for i in common) if score < threshold else frozenset()
    return rest, score, furniture


def decide(content: Content, feed: str, candidates: Sequence[Candidate], carriers: Mapping[int, set[int]],
           widespread: Set[int], *, threshold: float, min_shared: int) -> Decision:
    """The story ``content`` (an item of ``feed``) belongs to among ``candidates``.

    ``carriers`` maps the tail hashes of the content's sentences to the stories carrying them;
    ``widespread`` are those too many stories carry to list.
    """
    q = content.shingles
    raw: list[_Scored] = []
    furniture: set[int] = set()
    for cand in candidates:
        shared = q[_in_sorted(q, cand.shingles)]
        size = len(cand.shingles)
        if content.furniture.size:
            size -= int(_in_sorted(content.furniture, cand.shingles).sum())
        score = _containment(len(shared), len(q), size)
        if cand.feed == feed:
            rest = _same_feed(content, cand, size, shared, threshold=threshold, min_shared=min_shared)
            if rest is not None:
                furniture |= rest[2]
                if score >= threshold:
                    shared, score = rest[0], rest[1]
        raw.append(_Scored(cand, shared, score, size))
    learned = frozenset(furniture)
    related = {s.candidate.story_id for s in raw if s.score >= threshold and len(s.shared) >= min_shared}
    if not related:
        return Decision(None, furniture=learned)
    stock_of: dict[int, NDArray[np.uint32]] = {}
    sentences = content.stock_candidates
    final: list[_Scored] = []
    for scored in raw:
        story = scored.candidate.story_id
        if story not in related:
            continue
        if story not in stock_of:
            stock = [i for i, h in sentences
                     if h in widespread or _stock(carriers.get(h, set()) - {story}, related)]
            stock_of[story] = content.sentence_shingles(stock)
        stock_shingles = stock_of[story]
        shared = scored.shared
        score = scored.score
        if stock_shingles.size:
            in_stock = _in_sorted(shared, stock_shingles)
            shared = shared[~in_stock]
            score = _containment(len(shared), len(q) - len(stock_shingles), scored.size - int(in_stock.sum()))
        if score >= threshold and len(shared) >= min_shared:
            final.append(_Scored(scored.candidate, shared, score, scored.size))
    if not final:
        return Decision(None, furniture=learned)
    final.sort(key=lambda s: (-s.score, s.candidate.story_id))
    best = final[0]
    merged = {s.candidate.story_id for s in final}
    survivor = min(merged)
    covered = len(best.shared) / len(q) if len(q) else 1.0
    return Decision(survivor, best.score, tuple(sorted(merged - {survivor})), covered, learned)
