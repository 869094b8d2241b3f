"""From an item's text to what story dedup compares: sentences, their hashes, their shingles.

Why sentences: site furniture and stock text come as whole lines and sentences (a footer, a
share bar, a background sentence every article of a front repeats). Cut into sentences, the
text can lose exactly the ones that recur (``monitor.stories.furniture``) and be compared on
what remains. Shingles are taken inside a sentence, never across a boundary, so reordered
paragraphs keep all their shingles and a dropped sentence takes only its own.

Per sentence, its MinHash values too: the MinHash of a union is the element-wise minimum of
the parts', so the signature of "the text without its furniture" is a ``min`` over the rows of
the sentences that remain, whichever those turn out to be once the state has been read.

Pure (no database) and numpy only (no datasketch, no scipy): worker processes run it.
"""

from __future__ import annotations

import hashlib
import html
import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from monitor.text.normalize import normalize

__all__ = ["Fingerprint", "Permutations", "normalize_for_dedup", "sentence_words", "fingerprint",
           "sentence_hashes", "permutations", "sentence_signatures", "band_keys", "shingle_hashes"]

#: The (a, b) uint32 arrays of the affine MinHash permutations ``h -> a*h + b mod 2^32``.
Permutations = tuple[NDArray[np.uint32], NDArray[np.uint32]]

_WORD = re.compile(r"\w+")
# Sentence and line ends. The Arabic comma is not one; "|" and bullets separate the items of
# share bars and tag lists, which are furniture piece by piece.
_SENTENCE_END = re.compile(r"[.!?؟؛;…\n\r|•·]+")
_ENTITY = re.compile(r"&(?:#\d+|#x[0-9a-f]+|[a-z]+);", re.IGNORECASE)
_LINK_LINE_WORDS = 16  # a "read also" phrase and a headline
#: Words of a sentence's end that identify it among stories (``Fingerprint.tails``).
TAIL_WORDS = 8
_POLY = 0x9E3779B97F4A7C15  # odd multiplier of the polynomial shingle hash (mod 2^64)
_MASK64 = (1 << 64) - 1
_SEED = 20171106  # of the permutations: stored band keys are only comparable under the same ones


def normalize_for_dedup(text: str) -> str:
    """The project's Arabic normalization, lower-cased, with entity text decoded.

    A site that escapes its HTML twice shows the reader ``&quot;`` as text: the same
    character as its neighbour's ``"``, so decoded here before words are taken.
    """
    if "&" in text and _ENTITY.search(text):
        text = html.unescape(text)
    return normalize(text).lower()


@lru_cache(maxsize=8)
def _seed_pattern(phrases: tuple[str, ...]) -> re.Pattern[str] | None:
    words = sorted({w for w in (" ".join(_WORD.findall(normalize_for_dedup(p))) for p in phrases) if w},
                   key=len, reverse=True)
    if not words:
        return None
    return re.compile(r"(?<!\w)(?:" + "|".join(re.escape(w) for w in words) + r")(?!\w)")


def sentence_words(text: str, seed: tuple[str, ...]) -> list[list[str]]:
    """The words of each sentence of ``text``, normalized, without the seed furniture.

    A short sentence that starts with a seed phrase ("اقرأ أيضا: <another headline>") is a
    link line, dropped whole; elsewhere (and in a long sentence: markup lost, the link ran
    into the article) the phrase alone is removed.
    """
    pattern = _seed_pattern(seed)
    out: list[list[str]] = []
    for piece in _SENTENCE_END.split(normalize_for_dedup(text)):
        words = _WORD.findall(piece)
        if not words:
            continue
        if pattern is not None:
            joined = " ".join(words)
            found = pattern.search(joined)
            if found is not None:
                if found.start() == 0 and len(words) <= _LINK_LINE_WORDS:
                    continue
                words = pattern.sub(" ", joined).split()
        if words:
            out.append(words)
    return out


def sentence_hashes(text: str, seed: tuple[str, ...], shingle_words: int) -> list[tuple[int, int]]:
    """(hash, words) of each sentence of ``text``, as ``fingerprint`` hashes them (for the
    furniture vote of a poll's items that need no full key)."""
    sentences = sentence_words(text, seed)
    _, mixed, offsets = shingle_hashes(sentences, shingle_words)
    return list(zip(_sentence_sums(mixed, offsets).tolist(), [len(w) for w in sentences], strict=True))


# word -> 64-bit hash, shared by all texts: news vocabulary repeats, so most words are a
# dict lookup instead of a blake2b call. Bounded (cleared when full, ~5 MB).
_WORD_HASHES: dict[str, int] = {}
_WORD_HASHES_MAX = 50_000


def _word_hash(word: str) -> int:
    if len(_WORD_HASHES) >= _WORD_HASHES_MAX:
        _WORD_HASHES.clear()
    value = _WORD_HASHES[word] = int.from_bytes(
        hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest(), "little")
    return value


def _mix(h: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """MurmurHash3's 64-bit finalizer (in place)."""
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    h ^= h >> np.uint64(33)
    return h


def _avalanche(h: NDArray[np.uint64]) -> NDArray[np.uint32]:
    """``_mix``, folded to the top 32 bits."""
    return (_mix(h) >> np.uint64(32)).astype(np.uint32)


def _sentence_sums(mixed: NDArray[np.uint64], offsets: NDArray[np.int64], last: int | None = None
                   ) -> NDArray[np.int64]:
    """63-bit hash of each sentence: the (mixed) sum of its shingles' 64-bit hashes, or of its
    ``last`` shingles only. The shingles overlap, so together they spell the sentence out."""
    if not len(mixed):
        return np.zeros(len(offsets) - 1, dtype=np.int64)
    total = np.zeros(len(mixed) + 1, dtype=np.uint64)
    np.cumsum(mixed, out=total[1:])
    ends = offsets[1:]
    starts = offsets[:-1] if last is None else np.maximum(offsets[:-1], ends - last)
    sums = total[ends] - total[starts]
    if last is not None:
        sums ^= np.uint64(0x5851F42D4C957F2D)  # a tail never equals a whole sentence's hash
    return (_mix(sums) >> np.uint64(1)).astype(np.int64)


def shingle_hashes(sentences: list[list[str]], k: int
                   ) -> tuple[NDArray[np.uint32], NDArray[np.uint64], NDArray[np.int64]]:
    """Hashes of the ``k``-word shingles inside each sentence (a shorter sentence is one shingle
    of all its words), concatenated: 32 bits (MinHash input) and the 64 bits they are folded
    from (sentence hashes); and the offsets where each sentence's start (``len(sentences) + 1``).

    A shingle's hash is the polynomial ``((w_0 * P + w_1) * P + w_2 ...) mod 2^64`` of its
    words' hashes (order-sensitive), vectorised over the whole text, then avalanched.
    """
    get = _WORD_HASHES.get
    flat = [word for words in sentences for word in words]
    w = np.array([get(x) or _word_hash(x) for x in flat], dtype=np.uint64)
    lengths = np.array([len(words) for words in sentences], dtype=np.int64)
    counts = np.maximum(lengths - k + 1, 1)
    offsets = np.zeros(len(sentences) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    if not len(w):
        return np.empty(0, dtype=np.uint32), np.empty(0, dtype=np.uint64), offsets
    n = max(len(w) - k + 1, 1)
    window = w[:n].copy()
    poly = np.uint64(_POLY)
    for j in range(1, k):
        tail = w[j:j + n]
        window[:len(tail)] *= poly
        window[:len(tail)] += tail
    starts = np.zeros(len(sentences), dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    # Start of every shingle that fits inside its sentence: sentence start + 0..count-1.
    owner = np.repeat(np.arange(len(sentences)), counts)
    positions = starts[owner] + (np.arange(int(offsets[-1])) - offsets[owner])
    hashes = window[np.minimum(positions, n - 1)]
    for index in np.flatnonzero(lengths < k):  # short sentences: the polynomial of all their words
        value = 0
        for word_hash in w[starts[index]:starts[index] + lengths[index]].tolist():
            value = (value * _POLY + word_hash) & _MASK64
        hashes[offsets[index]] = value
    mixed = _mix(hashes)
    return (mixed >> np.uint64(32)).astype(np.uint32), mixed, offsets


@dataclass(frozen=True)
class Fingerprint:
    """What dedup needs from one text, furniture still in.

    ``text_hash`` identifies the normalized word sequence (exact duplicates);
    ``hashes[i]`` is sentence i's hash, ``tails[i]`` the hash of its last ``TAIL_WORDS`` words
    (what a copy keeps when another site glues its dateline or byline to the start of a lede),
    ``words[i]`` its word count, and its shingles are ``shingles[offsets[i]:offsets[i + 1]]``.
    """

    text_hash: str
    hashes: NDArray[np.int64]
    tails: NDArray[np.int64]
    words: NDArray[np.int64]
    offsets: NDArray[np.int64]
    shingles: NDArray[np.uint32]

    @property
    def word_count(self) -> int:
        return int(self.words.sum())

    def __len__(self) -> int:
        return len(self.hashes)


def fingerprint(text: str, seed: tuple[str, ...], shingle_words: int) -> Fingerprint:
    """Normalize ``text``, cut it into sentences without the seed furniture, hash and shingle them."""
    sentences = sentence_words(text, seed)
    digest = hashlib.sha1(" ".join(" ".join(words) for words in sentences).encode("utf-8")).hexdigest()
    shingles, mixed, offsets = shingle_hashes(sentences, shingle_words)
    tail = max(TAIL_WORDS - shingle_words + 1, 1)
    return Fingerprint(digest, _sentence_sums(mixed, offsets), _sentence_sums(mixed, offsets, tail),
                       np.array([len(words) for words in sentences], dtype=np.int64), offsets, shingles)


@lru_cache(maxsize=4)
def permutations(num_perm: int) -> Permutations:
    """The project's fixed MinHash permutations (odd multipliers), the same in every process."""
    rng = np.random.default_rng(_SEED)
    a = rng.integers(0, 2**31, size=num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = rng.integers(0, 2**32, size=num_perm, dtype=np.uint32)
    return a, b


def sentence_signatures(fp: Fingerprint, perms: Permutations) -> NDArray[np.uint32]:
    """MinHash values of each sentence's shingles: ``uint32[len(fp), num_perm]``."""
    a, b = perms
    if not len(fp):
        return np.empty((0, len(a)), dtype=np.uint32)
    hv = fp.shingles.reshape(-1, 1)
    # MurmurHash3 fmix32 pre-mix (shingle hashes are already mixed; this decorrelates the
    # permutations' low bits), then a_k * h + b_k mod 2^32.
    hv = hv ^ (hv >> np.uint32(16))
    hv *= np.uint32(0x85EBCA6B)
    hv ^= hv >> np.uint32(13)
    hv *= np.uint32(0xC2B2AE35)
    hv ^= hv >> np.uint32(16)
    values: NDArray[np.uint32] = np.minimum.reduceat(hv * a + b, fp.offsets[:-1], axis=0)
    return values


def band_keys(signature: NDArray[np.uint32], rows: int = 2) -> NDArray[np.int64]:
    """One 31-bit key per LSH band of ``rows`` MinHash values (the band's number mixed in).

    31 bits: a SQLite INTEGER of 4 bytes. Two texts share a band key when they share the
    band's values (or, rarely, by collision; candidates are verified anyway).
    """
    bands = len(signature) // rows
    values = signature[:bands * rows].reshape(bands, rows).astype(np.uint64)
    key = np.arange(1, bands + 1, dtype=np.uint64) * np.uint64(0xD6E8FEB86659FD93)
    for column in range(rows):
        key ^= values[:, column]
        key *= np.uint64(_POLY)
        key ^= key >> np.uint64(29)
    return (_avalanche(key) >> np.uint32(1)).astype(np.int64)
