"""The story dedup the daemon had before issue 13, frozen here so that the benchmark can measure
it beside the current one in the same run: whole-text MinHash at Jaccard 0.4.

What it did, per item: normalize the whole text, remove the fixed boilerplate phrases, take
word 3-gram shingles, MinHash(128) with datasketch's affine32 scheme (computed in numpy, bit
for bit); then exact checks (item key, canonical link, text hash) in the state database, an
in-memory ``MinHashLSH`` query (here through datasketch's public API) verified against the
MinHash stored with the candidate story, and a new story otherwise. Only the first item's
sketch stands for a story.

Bench code only: its two statements on the ``stories.minhash`` column (unused by the monitor
since schema step 6) are the baseline's, not the state layer's.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor.feeds.links import canonical_url
from monitor.state import stories as state_stories
from monitor.state.db import Database
from monitor.text.normalize import normalize
from monitor.types import Item

THRESHOLD = 0.4
NUM_PERM = 128
SHINGLE_WORDS = 3
MIN_WORDS = 12
BOILERPLATE = ("اقرأ أيضا", "إقرأ أيضا", "اقرأ أيضاً", "اقرأ المزيد", "اظهر المزيد", "أظهر المزيد", "شاهد أيضا",
               "زر الذهاب إلى الأعلى", "مواضيع ذات صلة", "تابعونا على")
WINDOW = 72 * 3600.0

_WORD = re.compile(r"\w+")
_POLY = 0x9E3779B97F4A7C15
_WORD_HASHES: dict[str, int] = {}


@lru_cache(maxsize=1)
def _boilerplate() -> re.Pattern[str]:
    words = sorted({" ".join(_WORD.findall(normalize(p).lower())) for p in BOILERPLATE}, key=len, reverse=True)
    return re.compile(r"(?<!\w)(?:" + "|".join(re.escape(w) for w in words) + r")(?!\w)")


def _word_hash(word: str) -> int:
    value = _WORD_HASHES.get(word)
    if value is None:
        if len(_WORD_HASHES) >= 50_000:
            _WORD_HASHES.clear()
        value = _WORD_HASHES[word] = int.from_bytes(hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest(),
                                                    "little")
    return value


def _shingles(words: list[str]) -> NDArray[np.uint32]:
    if not words:
        return np.empty(0, dtype=np.uint32)
    w = np.array([_word_hash(x) for x in words], dtype=np.uint64)
    k = min(SHINGLE_WORDS, len(w))
    n = len(w) - k + 1
    h = w[:n].copy()
    for j in range(1, k):
        h *= np.uint64(_POLY)
        h += w[j:j + n]
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    h ^= h >> np.uint64(33)
    return np.unique((h >> np.uint64(32)).astype(np.uint32))


@lru_cache(maxsize=1)
def permutations() -> tuple[NDArray[np.uint32], NDArray[np.uint32]]:
    """datasketch's affine32 permutations for seed 1 (as the daemon took them from a MinHash)."""
    from datasketch import MinHash

    a, b = MinHash(num_perm=NUM_PERM, scheme="affine32").permutations
    return a.astype(np.uint32), b.astype(np.uint32)


def _signature(shingles: NDArray[np.uint32]) -> NDArray[np.uint32]:
    a, b = permutations()
    hv = shingles.reshape(-1, 1)
    hv = hv ^ (hv >> np.uint32(16))
    hv *= np.uint32(0x85EBCA6B)
    hv ^= hv >> np.uint32(13)
    hv *= np.uint32(0xC2B2AE35)
    hv ^= hv >> np.uint32(16)
    values: NDArray[np.uint32] = (hv * a + b).min(axis=0)
    return values


@dataclass(frozen=True)
class WholeTextKey:
    link: str | None
    text_hash: str
    words: int
    shingles: int
    signature: NDArray[np.uint32] | None


def whole_text_key(item: Item) -> WholeTextKey:
    words_text = _boilerplate().sub(" ", " ".join(_WORD.findall(normalize(item.text).lower())))
    words = words_text.split()
    digest = hashlib.sha1(" ".join(words).encode("utf-8")).hexdigest()
    shingles = _shingles(words)
    signature = _signature(shingles) if len(words) >= MIN_WORDS else None
    return WholeTextKey(canonical_url(item.link), digest, len(words), len(shingles), signature)


class WholeTextLSH:
    """The in-memory LSH of one process (datasketch's public API)."""

    def __init__(self) -> None:
        from datasketch import LeanMinHash, MinHashLSH

        self._lean = LeanMinHash
        self.lsh = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM)

    def minhash(self, signature: NDArray[np.uint32]) -> Any:
        return self._lean(seed=1, hashvalues=signature, scheme="affine32")

    def insert(self, key: Any, signature: NDArray[np.uint32]) -> None:
        self.lsh.insert(key, self.minhash(signature), check_duplication=False)

    def query(self, signature: NDArray[np.uint32]) -> list[Any]:
        found: list[Any] = self.lsh.query(self.minhash(signature))
        return found


class WholeTextStories:
    """The baseline's assignment over the state database, with its LSH in this process."""

    def __init__(self) -> None:
        self.lsh = WholeTextLSH()

    def assign(self, db: Database, item: Item, now: float, key: WholeTextKey) -> int:
        cutoff = now - WINDOW
        story_id = state_stories.story_of_item(db, item.key)
        if story_id is not None:
            state_stories.touch(db, story_id, now)
            return story_id
        if key.link:
            story_id = state_stories.live_by_link(db, key.link, cutoff)
        if story_id is None:
            story_id = state_stories.live_by_text_hash(db, key.text_hash, cutoff)
        if story_id is None and key.signature is not None:
            story_id = self._near(db, key.signature, cutoff)
        if story_id is not None:
            state_stories.add_item(db, story_id, item_key=item.key, feed=item.feed, link=key.link, title=item.title,
                                   now=now)
            return story_id
        story_id = state_stories.create(db, now=now, text_hash=key.text_hash, title=item.title, shingles=key.shingles)
        state_stories.add_item(db, story_id, item_key=item.key, feed=item.feed, link=key.link, title=item.title,
                               now=now, new_story=True)
        if key.signature is not None:
            db.execute("UPDATE stories SET minhash = ? WHERE id = ?", (key.signature.tobytes(), story_id))
            self.lsh.insert(story_id, key.signature)
        return story_id

    def _near(self, db: Database, signature: NDArray[np.uint32], cutoff: float) -> int | None:
        best, best_sim = None, 0.0
        for story_id in self.lsh.query(signature):
            blob = db.scalar("SELECT minhash FROM stories WHERE id = ? AND updated >= ?", (story_id, cutoff))
            if blob is None:
                continue
            sim = int(np.count_nonzero(signature == np.frombuffer(blob, dtype=np.uint32))) / NUM_PERM
            if sim >= THRESHOLD and sim > best_sim:
                best, best_sim = int(story_id), sim
        return best
