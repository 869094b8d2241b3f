"""Dedup stage: fold every item into a *story* (one event, many outlets).

Why stories: the same article reaches the user from many feeds, many polls
and many edits; alerts are keyed on (story, rule), so folding duplicates into
one story is what keeps the user from getting the same alert twice.

Order of checks (cheapest and surest first):

1. the item's own key (guid / canonical link / hash) was seen -> its story
   (a re-poll or an edit of the same item);
2. the canonical link is already in a live story (another feed, same URL);
3. the hash of the normalized, boilerplate-free text matches a live story;
4. near duplicate: MinHash LSH (datasketch) over word 3-gram shingles of the
   normalized text, verified against the stored MinHash of the candidate;
5. otherwise a new story.

"Live" means updated within ``window_hours``. The in-memory LSH is a cache of
the ``stories`` table: a candidate is only believed after it is re-read from
the database inside the caller's transaction, and its similarity is computed
from the stored MinHash, never from the in-memory copy. So a transaction that
rolls back can leave an entry in the LSH, but that entry is harmless: it is
not found in the database (or, if SQLite reuses the id, the stored MinHash is
the one compared and the in-memory entry is replaced). No commit/rollback
calls are needed from the caller.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from monitor.feeds.links import canonical_url
from monitor.state import stories as state_stories
from monitor.state.db import Database
from monitor.stories.settings import DedupSettings
from monitor.types import Item

try:  # the shared Arabic normalizer (monitor.text.normalize) when it has landed
    from monitor.text.normalize import normalize as _normalize
except ImportError:  # pragma: no cover - stand-in with the same contract
    _normalize = None

if TYPE_CHECKING:  # datasketch imports scipy (1 s+): loaded by the first StoryIndex, not by config/CLI
    from datasketch import MinHash, MinHashLSH


@lru_cache(maxsize=1)
def _sketch() -> Any:
    """(numpy, MinHash, MinHashLSH), imported on first use."""
    import numpy
    from datasketch import MinHash, MinHashLSH

    return numpy, MinHash, MinHashLSH


__all__ = ["DedupSettings", "StoryAssignment", "StoryIndex", "DedupKey", "dedup_key", "Fingerprint", "fingerprint",
           "minhash_signature"]


@dataclass(frozen=True)
class StoryAssignment:
    """Which story an item belongs to and why (``reason``: 'exact', 'near' or 'new').

    ``new_source`` is False when the item itself was already part of the story
    (a re-poll or an edit of the same guid/link): routing then neither adds a
    source nor sends a follow-up.
    """

    story_id: int
    new_story: bool
    reason: str
    similarity: float | None = None
    new_source: bool = True


# -- text fingerprint ---------------------------------------------------------

_WORD = re.compile(r"\w+")
_BIDI_ZW = dict.fromkeys(map(ord, "\u0640\u200b\u200c\u200d\u200e\u200f\u2066\u2067\u2068\u2069\u202a\u202b\u202c\u202d\u202e\ufeff"))
_FALLBACK = str.maketrans({"أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا", "ى": "ي", "ة": "ه", "ؤ": "و", "ئ": "ي"})


def _fallback_normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).translate(_BIDI_ZW)
    text = "".join(c for c in text if not unicodedata.combining(c))
    return text.translate(_FALLBACK).lower()


def normalize_for_dedup(text: str) -> str:
    """The project's Arabic normalization (or a stand-in), lower-cased."""
    norm = _normalize(text) if _normalize is not None else _fallback_normalize(text)
    return norm.lower()


@lru_cache(maxsize=8)
def _boilerplate_re(phrases: tuple[str, ...]) -> re.Pattern[str] | None:
    words = [" ".join(_WORD.findall(normalize_for_dedup(p))) for p in phrases]
    words = sorted({w for w in words if w}, key=len, reverse=True)
    if not words:
        return None
    return re.compile(r"(?<!\w)(?:" + "|".join(re.escape(w) for w in words) + r")(?!\w)")


@dataclass(frozen=True)
class Fingerprint:
    """What dedup needs from one text: its exact hash and its shingle set.

    ``shingles`` holds the distinct 32-bit hashes of the word shingles (a sorted
    numpy uint32 array): the MinHash input, and ``len()`` is the shingle count.
    """

    text_hash: str
    words: int
    shingles: Any


# word -> 64-bit hash, shared by all texts: news vocabulary repeats, so most words
# are a dict lookup instead of a blake2b call. Bounded (cleared when full, ~5 MB).
_WORD_HASHES: dict[str, int] = {}
_WORD_HASHES_MAX = 50_000
_POLY = 0x9E3779B97F4A7C15  # odd multiplier of the polynomial shingle hash (mod 2^64)


def _word_hash(word: str) -> int:
    if len(_WORD_HASHES) >= _WORD_HASHES_MAX:
        _WORD_HASHES.clear()
    value = _WORD_HASHES[word] = int.from_bytes(
        hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest(), "little")
    return value


def shingle_hashes(words: list[str], k: int) -> Any:
    """Distinct 32-bit hashes of the ``k``-word shingles of ``words`` (all words if fewer).

    Vectorised: each word is hashed once (blake2b, cached), and each shingle's
    hash is the polynomial ``((w_0 * P + w_1) * P + w_2 ...) mod 2^64`` of its
    word hashes (order-sensitive), avalanched with the MurmurHash3 64-bit
    finalizer and folded to its top 32 bits. About 10x cheaper than building and
    sha1-hashing one bytes object per shingle.
    """
    import numpy as np  # not via _sketch(): worker processes need numpy only, not datasketch and scipy

    if not words:
        return np.empty(0, dtype=np.uint32)
    get = _WORD_HASHES.get
    w = np.array([get(x) or _word_hash(x) for x in words], dtype=np.uint64)
    k = min(k, len(w))
    n = len(w) - k + 1
    h = w[:n].copy()
    poly = np.uint64(_POLY)
    for j in range(1, k):
        h *= poly
        h += w[j:j + n]
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    h ^= h >> np.uint64(33)
    return np.unique((h >> np.uint64(32)).astype(np.uint32))


def fingerprint(text: str, settings: DedupSettings) -> Fingerprint:
    """Normalize, drop boilerplate, hash, and shingle ``text``.

    Hashing the *word sequence* (not the raw string) makes whitespace,
    punctuation, diacritics and tatweel differences exact duplicates.
    """
    words_text = " ".join(_WORD.findall(normalize_for_dedup(text)))
    pattern = _boilerplate_re(tuple(settings.boilerplate))
    if pattern is not None:
        words_text = pattern.sub(" ", words_text)
    words = words_text.split()
    digest = hashlib.sha1(" ".join(words).encode("utf-8")).hexdigest()
    return Fingerprint(digest, len(words), shingle_hashes(words, settings.shingle_words))


def minhash_signature(shingles: Any, permutations: tuple[Any, Any]) -> Any:
    """The MinHash hash values (uint32[num_perm]) of 32-bit shingle hashes (``Fingerprint.shingles``).

    Bit for bit what datasketch's ``MinHash(num_perm, scheme="affine32",
    hashfunc=<identity>).update_batch(shingles)`` gives (so its LSH and
    ``jaccard`` apply), in a few numpy operations instead of Python per shingle.
    Needs numpy only (not datasketch), so worker processes can run it.
    """
    import numpy as np

    a, b = permutations
    hv = np.asarray(shingles, dtype=np.uint32)
    if not hv.size:
        return np.full(len(a), 0xFFFFFFFF, dtype=np.uint32)
    hv = hv.reshape(-1, 1)
    # MurmurHash3 fmix32 pre-mix, then a_k * h + b_k mod 2^32 (datasketch's affine32).
    hv = hv ^ (hv >> np.uint32(16))
    hv *= np.uint32(0x85EBCA6B)
    hv ^= hv >> np.uint32(13)
    hv *= np.uint32(0xC2B2AE35)
    hv ^= hv >> np.uint32(16)
    return (hv * a + b).min(axis=0)


@dataclass(frozen=True)
class DedupKey:
    """Everything dedup computes from one item alone (no database): its canonical
    link, text fingerprint and, for a text long enough, its MinHash values.

    Built by ``dedup_key`` in a worker process (``monitor.ingest.analysis``) so that
    ``StoryIndex.assign`` on the event loop only looks things up and records.
    """

    link: str | None
    fingerprint: Fingerprint
    signature: Any = None  # uint32[num_perm] or None


def dedup_key(item: Item, settings: DedupSettings, permutations: tuple[Any, Any]) -> DedupKey:
    fp = fingerprint(item.text, settings)
    signature = minhash_signature(fp.shingles, permutations) if fp.words >= settings.min_words else None
    return DedupKey(canonical_url(item.link), fp, signature)


# datasketch 2's 32-bit scheme, fixed explicitly: stored sketches must be
# rebuilt with the scheme that made them (a 512-byte BLOB per story).
_SCHEME = "affine32"
_BLOB_BYTES = 4

# -- the index ----------------------------------------------------------------


class StoryIndex:
    """Assigns items to stories; holds the MinHash LSH of live stories in memory.

    Call ``load(db, now)`` once at startup, then ``assign(db, item, now)``
    inside the transaction that also records the item (see module docstring
    for why a rollback needs no extra call).
    """

    def __init__(self, settings: DedupSettings | None = None) -> None:
        self.settings = settings or DedupSettings()
        np, MinHash, _ = _sketch()
        self._np = np
        self._template = MinHash(num_perm=self.settings.num_perm, scheme=_SCHEME)
        a, b = self._template.permutations
        self._perm = (a.astype(np.uint32), b.astype(np.uint32))
        self._lsh = self._new_lsh()
        self._updated: dict[int, float] = {}  # story id -> last update, for expiry
        self._assigns = 0

    def _new_lsh(self) -> MinHashLSH:
        return _sketch()[2](threshold=self.settings.threshold, num_perm=self.settings.num_perm)

    @property
    def window(self) -> float:
        return self.settings.window_hours * 3600.0

    def __len__(self) -> int:
        return len(self._updated)

    @property
    def permutations(self) -> tuple[Any, Any]:
        """The (a, b) uint32 arrays of datasketch's affine32 permutations, for ``minhash_signature``."""
        return self._perm

    def signature(self, shingles: Any) -> Any:
        """``minhash_signature`` with this index's permutations."""
        return minhash_signature(shingles, self._perm)

    def minhash(self, shingles: Any) -> Any:
        """A (lean, frozen) MinHash of 32-bit shingle hashes, for the LSH."""
        return self._lean(self.signature(shingles))

    def _lean(self, hashvalues: Any) -> Any:
        from datasketch import LeanMinHash

        return LeanMinHash(seed=self._template.seed, hashvalues=hashvalues, scheme=_SCHEME)

    def _from_blob(self, blob: bytes) -> Any:
        # A LeanMinHash carries only the hash values: 25x cheaper to build than a
        # MinHash, which regenerates its permutations (this runs per LSH candidate
        # and per stored story at start-up).
        return self._lean(self._np.frombuffer(blob, dtype=self._np.uint32))

    def load(self, db: Database, now: float) -> int:
        """Rebuild the LSH from the stories still inside the window; returns their number."""
        self._lsh = self._new_lsh()
        self._updated.clear()
        with self._lsh.insertion_session() as session:
            for story_id, blob, updated in state_stories.live_sketches(db, now - self.window):
                if len(blob) != _BLOB_BYTES * self.settings.num_perm:
                    continue  # written with another num_perm: exact dedup still works
                session.insert(story_id, self._from_blob(blob), check_duplication=False)
                self._updated[story_id] = updated
        return len(self._updated)

    def _index(self, story_id: int, mh: MinHash, now: float) -> None:
        if story_id in self._lsh:
            self._lsh.remove(story_id)  # a phantom from a rolled-back transaction
        self._lsh.insert(story_id, mh, check_duplication=False)
        self._updated[story_id] = now

    def _expire(self, now: float) -> None:
        cutoff = now - self.window
        for sid in [s for s, t in self._updated.items() if t < cutoff]:
            del self._updated[sid]
            if sid in self._lsh:
                self._lsh.remove(sid)

    def assign(self, db: Database, item: Item, now: float, key: DedupKey | None = None
               ) -> StoryAssignment:
        """Find or create the item's story and record the item in it (no commit).

        ``key`` may come precomputed (``dedup_key`` in a worker process); it is
        computed here when missing.
        """
        self._assigns += 1
        if self._assigns % 500 == 0:
            self._expire(now)
        cutoff = now - self.window

        known = state_stories.story_of_item(db, item.key)
        if known is not None:
            # Same item again (re-poll or edit): its story, whatever its age.
            state_stories.touch(db, known, now)
            return StoryAssignment(known, False, "exact", 1.0, new_source=False)

        if key is None:
            key = dedup_key(item, self.settings, self._perm)
        link, fp = key.link, key.fingerprint
        story_id: int | None = None
        reason, similarity = "exact", 1.0
        if link:
            story_id = state_stories.live_by_link(db, link, cutoff)
        if story_id is None and fp.words:
            story_id = state_stories.live_by_text_hash(db, fp.text_hash, cutoff)

        sig = None  # MinHash hash values (uint32[num_perm])
        if story_id is None and fp.words >= self.settings.min_words:
            sig = key.signature
            story_id, similarity = self._best_candidate(db, sig, cutoff)
            reason = "near"

        if story_id is not None:
            state_stories.add_item(db, story_id, item_key=item.key, feed=item.feed, link=link, title=item.title,
                                   now=now)
            if story_id in self._updated:
                self._updated[story_id] = now
            return StoryAssignment(story_id, False, reason, similarity)

        blob = sig.astype(self._np.uint32).tobytes() if sig is not None else None
        story_id = state_stories.create(db, now=now, text_hash=fp.text_hash, sketch=blob, title=item.title,
                                        shingles=len(fp.shingles))
        state_stories.add_item(db, story_id, item_key=item.key, feed=item.feed, link=link, title=item.title,
                               now=now, new_story=True)
        if sig is not None:
            self._index(story_id, self._lean(sig), now)
        return StoryAssignment(story_id, True, "new", None)

    def _query(self, sig: Any) -> Iterable[Any]:
        """``MinHashLSH.query`` of these hash values, without its per-band numpy slice,
        byteswap and bytes copies: the band keys are slices of one big-endian copy,
        the bytes datasketch's ``_byteswap`` makes for the same band (and inserts under)."""
        lsh = self._lsh
        if lsh.prepickle or lsh._H != lsh._byteswap or sig.dtype != self._np.uint32:
            return lsh.query(self._lean(sig))  # a configuration this shortcut does not mirror
        raw = sig.byteswap().tobytes()
        candidates: set[Any] = set()
        for (start, end), table in zip(lsh.hashranges, lsh.hashtables):
            candidates.update(table.get(raw[start * 4:end * 4]))
        return candidates

    def _best_candidate(self, db: Database, sig: Any, cutoff: float) -> tuple[int | None, float | None]:
        best, best_sim = None, None
        for sid in self._query(sig):
            blob = state_stories.live_sketch(db, int(sid), cutoff)
            if blob is None or len(blob) != _BLOB_BYTES * self.settings.num_perm:
                continue  # phantom of a rolled-back transaction, or expired
            # MinHash.jaccard: the share of equal hash values.
            stored = self._np.frombuffer(blob, dtype=self._np.uint32)
            sim = int(self._np.count_nonzero(sig == stored)) / self.settings.num_perm
            if sim >= self.settings.threshold and (best_sim is None or sim > best_sim):
                best, best_sim = int(sid), sim
        return best, best_sim
