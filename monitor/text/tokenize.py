"""Word tokenization with offsets into the original text (for highlighting).

Same tokens as camel-tools' ``simple_word_tokenize`` (property-tested): split
on whitespace, and every Unicode punctuation or symbol character is a token
of its own; everything else forms words. One compiled ``re`` instead of
camel's per-character ``regex.match`` loop (~10x faster, see
``shared/design/perf-baselines.md`` section 2).

Known difference: camel keeps multi-character emoji sequences (ZWJ
sequences, flags, keycaps) as one token; here each symbol is its own token.
News titles and bodies rarely carry them and the matcher does not use them.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from typing import NamedTuple

__all__ = ["Token", "tokenize"]


class Token(NamedTuple):
    """A token and its ``[start, end)`` offsets: ``text == source[start:end]``."""

    text: str
    start: int
    end: int


# Punctuation and symbols exist only in the first two planes (the test suite checks all of
# Unicode): scanning 0x20000 code points instead of 0x110000 keeps building the patterns at
# ~30 ms, and they are built on first use, so importing this module costs nothing.
_LAST_PLANE_WITH_PUNCTUATION = 0x1FFFF


def _punct_symbol_class(limit: int = _LAST_PLANE_WITH_PUNCTUATION) -> str:
    ranges: list[tuple[int, int]] = []
    for cp in range(limit + 1):
        if unicodedata.category(chr(cp))[0] in "PS":
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1] = (ranges[-1][0], cp)
            else:
                ranges.append((cp, cp))
    parts = []
    for lo, hi in ranges:
        parts.append(re.escape(chr(lo)) if lo == hi else f"{re.escape(chr(lo))}-{re.escape(chr(hi))}")
    return "".join(parts)


@functools.cache
def _patterns() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """(the pattern for any text, the faster one for text without astral characters)."""
    every = _punct_symbol_class()
    # possessive: no backtracking bookkeeping
    full = re.compile(rf"[^\s{every}]++|[{every}]")
    # sre compiles a BMP-only class to a bitmap; a class with astral ranges is a
    # slow range scan. Text without astral characters (nearly all news) uses this.
    bmp = _punct_symbol_class(0xFFFF)
    return full, re.compile(rf"[^\s{bmp}]++|[{bmp}]")


_ASTRAL_RE = re.compile("[\U00010000-\U0010FFFF]")


def _pattern(text: str) -> re.Pattern[str]:
    # (a regex scan is ~8x faster than max(text) here)
    full, bmp = _patterns()
    return bmp if text.isascii() or _ASTRAL_RE.search(text) is None else full


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into word and punctuation/symbol tokens with offsets."""
    return [Token(m.group(), m.start(), m.end()) for m in _pattern(text).finditer(text)]


def token_strings(text: str) -> list[str]:
    """Just the token texts (what ``simple_word_tokenize`` returns)."""
    return _pattern(text).findall(text)
