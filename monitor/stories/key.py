"""``DedupKey``: everything story dedup computes from items alone, in a worker process.

One poll's new items come here together (``dedup_keys``), which is where a site's furniture is
first learned: a sentence that several items of this one feed document carry (the footer, the
share bar, the follow-us line) is marked in each item's key, before the state has seen any
item of the feed. ``StoryIndex.assign`` then adds what the state has learned from earlier
polls (``monitor.stories.furniture``), and stores what this poll taught.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from monitor.feeds.links import canonical_url
from monitor.stories.cluster import Content, content_of
from monitor.stories.fingerprint import (
    Fingerprint,
    Permutations,
    fingerprint,
    sentence_hashes,
    sentence_signatures,
)
from monitor.stories.settings import DedupSettings
from monitor.types import Item

__all__ = ["DedupKey", "dedup_key", "dedup_keys", "batch_repeats"]


@dataclass(frozen=True)
class DedupKey:
    """An item's canonical link, fingerprint and per-sentence MinHash values, the sentences of
    it that its poll's other items repeat (``furniture``, by hash), and its content without
    them (what ``assign`` uses as is unless the state knows more furniture)."""

    link: str | None
    fingerprint: Fingerprint
    signatures: NDArray[np.uint32]
    furniture: frozenset[int]
    content: Content

    def furniture_mask(self) -> NDArray[np.bool_]:
        """Per sentence: is it furniture by this poll's vote?"""
        return np.array([h in self.furniture for h in self.fingerprint.hashes.tolist()], dtype=np.bool_)


def _key(link: str | None, fp: Fingerprint, signatures: NDArray[np.uint32], furniture: frozenset[int]) -> DedupKey:
    mask = np.array([h in furniture for h in fp.hashes.tolist()], dtype=np.bool_)
    return DedupKey(link, fp, signatures, furniture, content_of(fp, signatures, mask))


def batch_repeats(per_item: Sequence[Sequence[tuple[int, int]]], furniture_items: int,
                  min_words: int) -> frozenset[int]:
    """The sentence hashes one feed document repeats, from each item's (hash, words) sentences.

    Repeated: in ``furniture_items`` items, or in at least half the items of a small document
    (two briefs under one footer are two of two), counting only items that keep ``min_words``
    words of their own besides what the document repeats. Two items that are the same text
    under two headlines repeat each other, not the site.
    """
    counts = Counter(h for sentences in per_item for h in {h for h, _ in sentences})
    least = min(furniture_items, max(2, (len(per_item) + 1) // 2))
    repeated = {h for h, n in counts.items() if n >= least}
    if not repeated:
        return frozenset()
    own = [sum(words for h, words in sentences if h not in repeated) >= min_words for sentences in per_item]
    confirmed = Counter(h for sentences, keeps in zip(per_item, own, strict=True) if keeps
                        for h in {h for h, _ in sentences} & repeated)
    return frozenset(h for h, n in confirmed.items() if n >= least)


def dedup_key(item: Item, settings: DedupSettings, perms: Permutations) -> DedupKey:
    """The key of one item alone (nothing learned from its poll's other items)."""
    fp = fingerprint(item.text, tuple(settings.boilerplate), settings.shingle_words)
    return _key(canonical_url(item.link), fp, sentence_signatures(fp, perms), frozenset())


def dedup_keys(items: Sequence[Item], fold: Sequence[bool], settings: DedupSettings,
               perms: Permutations) -> list[DedupKey | None]:
    """Keys of the items to ``fold`` (those that matched a rule), with furniture learned from all
    ``items`` of the poll (sentence hashes only for the others: a fifth of a key's cost)."""
    seed = tuple(settings.boilerplate)
    keys: list[DedupKey | None] = [dedup_key(item, settings, perms) if wanted else None
                                   for item, wanted in zip(items, fold, strict=True)]
    per_item = [list(zip(key.fingerprint.hashes.tolist(), key.fingerprint.words.tolist(), strict=True))
                if key is not None else sentence_hashes(item.text, seed, settings.shingle_words)
                for item, key in zip(items, keys, strict=True)]
    repeats = batch_repeats(per_item, settings.furniture_items, settings.min_words) if len(items) > 1 else frozenset()
    if not repeats:
        return keys
    out: list[DedupKey | None] = []
    for key, sentences in zip(keys, per_item, strict=True):
        mine = repeats.intersection(h for h, _ in sentences) if key is not None else frozenset()
        out.append(_key(key.link, key.fingerprint, key.signatures, mine) if key is not None and mine else key)
    return out
