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
  are the site's (two briefs under one footer). They are reported back, and counted as the
  feed's furniture from then on.

Pure numpy over values read from the state by ``monitor.stories.index``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from monitor.stories.fingerprint import Fingerprint

__all__ = ["Content", "Candidate", "Decision", "content_of", "decide", "STOCK_MIN_WORDS"]

#: Shorter sentences are too common to say anything as stock text ("وأضاف", a place name).
STOCK_MIN_WORDS = 6
#: A sentence this many other live stories carry is stock text, whatever the item resembles.
WIDESPREAD = 3

_EMPTY = np.empty(0, dtype=np.uint32)


@dataclass(frozen=True)
class Content:
    """What remains of an item once its furniture is out: the sentences kept (indexes into
    the fingerprint), their distinct shingles (sorted) and their MinHash signature; and the
    shingles of the furniture left out (a member stored before its feed's furniture was
    learned still holds them: they are not counted in its size either)."""

    fingerprint: Fingerprint
    kept: NDArray[np.int64]
    shingles: NDArray[np.uint32]
    signature: NDArray[np.uint32] | None
    words: int
    furniture: NDArray[np.uint32]

    def sentence_shingles(self, indexes: Sequence[int]) -> NDArray[np.uint32]:
        """Distinct shingles of the given sentences (indexes into the fingerprint)."""
        offsets = self.fingerprint.offsets
        pieces = [self.fingerprint.shingles[offsets[i]:offsets[i + 1]] for i in indexes]
        return np.unique(np.concatenate(pieces)) if pieces else _EMPTY

    def stock_candidates(self) -> list[tuple[int, int]]:
        """(sentence index, hash) of the kept sentences long enough to be stock text."""
        fp = self.fingerprint
        return [(int(i), int(fp.hashes[i])) for i in self.kept if fp.words[i] >= STOCK_MIN_WORDS]


def content_of(fp: Fingerprint, signatures: NDArray[np.uint32], furniture: NDArray[np.bool_]) -> Content:
    """The content of a fingerprinted text without the sentences marked ``furniture``."""
    kept = np.flatnonzero(~furniture).astype(np.int64)
    offsets = fp.offsets
    left_out = [fp.shingles[offsets[i]:offsets[i + 1]] for i in np.flatnonzero(furniture)]
    furniture_shingles = np.unique(np.concatenate(left_out)) if left_out else _EMPTY
    if not kept.size:
        return Content(fp, kept, _EMPTY, None, 0, furniture_shingles)
    if kept.size == len(fp):
        shingles = np.unique(fp.shingles)
    else:
        shingles = np.unique(np.concatenate([fp.shingles[offsets[i]:offsets[i + 1]] for i in kept]))
        furniture_shingles = np.setdiff1d(furniture_shingles, shingles, assume_unique=True)
    signature: NDArray[np.uint32] = signatures[kept].min(axis=0)
    return Content(fp, kept, shingles, signature, int(fp.words[kept].sum()), furniture_shingles)


@dataclass(frozen=True)
class Candidate:
    """A stored member of a live story: its feed, content shingles (sorted, distinct) and the
    hashes of its content sentences."""

    member_id: int
    story_id: int
    feed: str
    shingles: NDArray[np.uint32]
    sentences: NDArray[np.int64]


@dataclass(frozen=True)
class Decision:
    """The story the item joins (None: a new one), its containment there, the stories merged
    into it, the Jaccard similarity to its closest member (a near-identical copy adds nothing
    to the index), and the item's sentences found to be its feed's furniture."""

    story_id: int | None
    similarity: float | None = None
    merged: tuple[int, ...] = ()
    jaccard: float = 0.0
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
    common = [int(i) for i in content.kept if np.any(cand.sentences == hashes[i])]
    if not common:
        return None
    verbatim = content.sentence_shingles(common)
    in_verbatim = np.isin(shared, verbatim, assume_unique=True)
    rest_q = len(content.shingles) - len(verbatim)
    rest_m = size - int(in_verbatim.sum())
    if rest_q < min_shared or rest_m < min_shared:
        return None
    rest = shared[~in_verbatim]
    score = _containment(len(rest), rest_q, rest_m)
    furniture = frozenset(int(hashes[i]) for i in common) if score < threshold else frozenset()
    return rest, score, furniture


def decide(content: Content, feed: str, candidates: Sequence[Candidate], sentence_stories: Mapping[int, set[int]],
           *, threshold: float, min_shared: int) -> Decision:
    """The story ``content`` (an item of ``feed``) belongs to among ``candidates``.

    ``sentence_stories`` maps sentence hashes of the content to the live stories carrying them.
    """
    q = content.shingles
    raw: list[_Scored] = []
    furniture: set[int] = set()
    for cand in candidates:
        shared = np.intersect1d(q, cand.shingles, assume_unique=True)
        size = len(cand.shingles)
        if content.furniture.size:
            size -= int(np.isin(content.furniture, cand.shingles, assume_unique=True).sum())
        score = _containment(len(shared), len(q), size)
        if cand.feed == feed and score >= threshold:
            rest = _same_feed(content, cand, size, shared, threshold=threshold, min_shared=min_shared)
            if rest is not None:
                shared, score, found = rest
                furniture |= found
        raw.append(_Scored(cand, shared, score, size))
    learned = frozenset(furniture)
    related = {s.candidate.story_id for s in raw if s.score >= threshold and len(s.shared) >= min_shared}
    if not related:
        return Decision(None, furniture=learned)
    stock_of: dict[int, NDArray[np.uint32]] = {}
    sentences = content.stock_candidates()
    final: list[_Scored] = []
    for scored in raw:
        story = scored.candidate.story_id
        if story not in related:
            continue
        if story not in stock_of:
            stock = [i for i, h in sentences if _stock(sentence_stories.get(h, set()) - {story}, related)]
            stock_of[story] = content.sentence_shingles(stock)
        stock_shingles = stock_of[story]
        shared = scored.shared
        score = scored.score
        if stock_shingles.size:
            in_stock = np.isin(shared, stock_shingles, assume_unique=True)
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
    union = len(q) + best.size - len(best.shared)
    jaccard = len(best.shared) / union if union else 1.0
    return Decision(survivor, best.score, tuple(sorted(merged - {survivor})), jaccard, learned)
