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

import re
import sys
import unicodedata
from typing import NamedTuple

__all__ = ["Token", "tokenize"]


class Token(NamedTuple):
    """A token and its ``[start, end)`` offsets: ``text == source[start:end]``."""

    text: str
    start: int
    end: int


def _punct_symbol_class(limit: int = sys.maxunicode) -> str:
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


_PS = _punct_symbol_class()
_TOKEN_RE = re.compile(rf"[^\s{_PS}]++|[{_PS}]")  # possessive: no backtracking bookkeeping
# sre compiles a BMP-only class to a bitmap; a class with astral ranges is a
# slow range scan. Text without astral characters (nearly all news) uses this.
_PS_BMP = _punct_symbol_class(0xFFFF)
_TOKEN_BMP_RE = re.compile(rf"[^\s{_PS_BMP}]++|[{_PS_BMP}]")


_ASTRAL_RE = re.compile("[\U00010000-\U0010FFFF]")


def _pattern(text: str) -> re.Pattern[str]:
    # (a regex scan is ~8x faster than max(text) here)
    return _TOKEN_BMP_RE if text.isascii() or _ASTRAL_RE.search(text) is None else _TOKEN_RE


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into word and punctuation/symbol tokens with offsets."""
    return [Token(m.group(), m.start(), m.end()) for m in _pattern(text).finditer(text)]


def token_strings(text: str) -> list[str]:
    """Just the token texts (what ``simple_word_tokenize`` returns)."""
    return _pattern(text).findall(text)
