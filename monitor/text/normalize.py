"""Arabic normalization for matching and dedup (the original text is kept for display).

``normalize`` is the hot path: one ``str.translate`` over a table that maps
every character to what the camel-tools chain would make of it, plus an NFC
pass only when the text still holds characters that compose or reorder
(decomposed hamza/madda, stacked marks). Measured in
``shared/design/perf-baselines.md`` (variant b5) to be exact and ~3x faster
than the chain, whose cost is a per-character Python loop plus NFKC.

``normalize_reference`` is the oracle the tests compare against: the
camel-tools chain (``normalize_unicode``, ``normalize_alef_ar``,
``normalize_alef_maksura_ar``, ``normalize_teh_marbuta_ar``, ``dediac_ar``)
applied after the documented extra steps below. camel-tools is imported
lazily there, never on the daemon's hot path.

Documented extras (not done by camel-tools, needed for news text):

* deleted *before* the chain (so they never block hamza composition):
  tatweel U+0640, zero-width and bidi marks U+200B-U+200F, U+202A-U+202E,
  U+2066-U+2069, U+061C, BOM U+FEFF, soft hyphen U+00AD;
* mapped *after* the chain: Persian/Urdu yeh and keheh (ی ے -> ي, ک -> ك),
  the heh and teh marbuta forms of Kurdish, Persian and Urdu keyboards
  (ە ھ ہ ۃ -> ه: الرقە is الرقة), Arabic-Indic and Persian digits -> ASCII
  digits; the deletions above are applied again (NFKC turns presentation-form
  marks such as U+FE77 into tatweel + mark), so ``normalize`` is idempotent.

The full per-character table (~120,000 entries, 50 ms to build) is only needed
for text that is not already NFKC (presentation forms, ligatures): it is built
on first use, so importing this module (every CLI command, every worker) does
not pay for it.
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata

__all__ = ["normalize", "normalize_reference", "normalize_with_path", "EXTRA_DELETIONS", "EXTRA_MAPPINGS",
           "char_output", "table_output", "exact_normalize", "special_chars", "FAST_SPECIAL_CHARS", "FAST", "TABLE",
           "EXACT"]

EXTRA_DELETIONS = frozenset(
    "\u0640\u00ad\u061c\ufeff"
    + "".join(map(chr, range(0x200B, 0x2010)))
    + "".join(map(chr, range(0x202A, 0x202F)))
    + "".join(map(chr, range(0x2066, 0x206A)))
)
EXTRA_MAPPINGS = {
    "\u06cc": "\u064a",  # Persian yeh ی
    "\u06d2": "\u064a",  # Urdu yeh barree ے
    "\u06a9": "\u0643",  # keheh ک
    "\u06d5": "\u0647",  # Kurdish ae ە (written for ة/ه)
    "\u06be": "\u0647",  # heh doachashmee ھ
    "\u06c1": "\u0647",  # heh goal ہ
    "\u06c3": "\u0647",  # teh marbuta goal ۃ
    **{chr(0x0660 + i): str(i) for i in range(10)},  # Arabic-Indic digits
    **{chr(0x06F0 + i): str(i) for i in range(10)},  # Persian digits
}
_AR_DIAC = frozenset("\u064b\u064c\u064d\u064e\u064f\u0650\u0651\u0652\u0670")  # camel AR_DIAC_CHARSET
_ALEF = {"\u0625": "\u0627", "\u0623": "\u0627", "\u0671": "\u0627", "\u0622": "\u0627",
         "\u0649": "\u064a", "\u0629": "\u0647"}
_CAMEL_FIX = {"\ufdfc": "ريال", "\ufdfd": "بسم الله الرحمن الرحيم"}


def _post(s: str) -> str:
    """The per-character part of the chain after NFKC, plus the extra mappings."""
    return "".join(EXTRA_MAPPINGS.get(c, _ALEF.get(c, c)) for c in s
                   if c not in _AR_DIAC and c not in EXTRA_DELETIONS)


_POST_TABLE: dict[int, str | None] = {ord(c): None for c in _AR_DIAC | EXTRA_DELETIONS}
_POST_TABLE.update({ord(k): v for k, v in {**_ALEF, **EXTRA_MAPPINGS}.items()})
_PRE_TABLE: dict[int, str | None] = {ord(c): None for c in EXTRA_DELETIONS}
_PRE_TABLE.update({ord(k): v for k, v in _CAMEL_FIX.items()})

#: How ``normalize_with_path`` got its output, which decides how offsets map back.
FAST, TABLE, EXACT = 1, 2, 0  # EXACT is falsy: "not per character"


def char_output(c: str) -> str:
    """What ``normalize`` makes of the single character ``c`` (table entry)."""
    if c in EXTRA_DELETIONS:
        return ""
    return _post(unicodedata.normalize("NFKC", _CAMEL_FIX.get(c, c)))


@functools.cache
def _table() -> dict[int, str | None]:
    """The per-character table of path 2, built on first use (50 ms)."""
    # Identity entries for the scripts news text is made of: str.translate raises and
    # swallows a LookupError for every unmapped char, which costs ~2x.
    table: dict[int, str | None] = {}
    ranges = [(0x80, 0x3400), (0xA000, 0xD800), (0xF900, 0x10000),
              (0x1D400, 0x1D800), (0x1EE00, 0x1EF00), (0x1F100, 0x1F300), (0x2F800, 0x2FA20)]
    for lo, hi in ranges:
        for cp in range(lo, hi):
            c = chr(cp)
            if unicodedata.category(c) == "Cs":
                continue
            out = char_output(c)
            table[cp] = None if out == "" else out
    for cp in range(0x80):
        out = char_output(chr(cp))
        if out != chr(cp):
            table[cp] = out
    return table


_DELETED = _AR_DIAC | EXTRA_DELETIONS
_DELETE_RE = re.compile("[" + "".join(sorted(_DELETED)) + "]")
_FREQUENT = tuple(_ALEF.items())
# ﷽ (U+FDFD) has no NFKC decomposition, so it survives the NFKC gate: camel expands it.
_RARE = {**EXTRA_MAPPINGS, "\ufdfd": char_output("\ufdfd")}
_RARE_RE = re.compile("[" + "".join(sorted(_RARE)) + "]")
#: The characters whose output on the fast path is not exactly one character (the deletions
#: and ﷽): what offset mapping must look at in a text normalized by path 1.
FAST_SPECIAL_CHARS = frozenset(_DELETED | {"\ufdfd"})


@functools.cache
def special_chars() -> frozenset[str]:
    """Characters whose table output is not exactly one character (path 2's offset mapping)."""
    return frozenset(chr(cp) for cp, out in _table().items() if out is None or len(out) != 1)


def __getattr__(name: str) -> frozenset[str]:
    # ``SPECIAL_CHARS`` stays importable (tests' frozen oracle) without building the table at import.
    if name == "SPECIAL_CHARS":
        return special_chars()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def normalize(text: str) -> str:
    """Normalize Arabic ``text`` for matching and dedup (pure, fast).

    Equal to ``normalize_reference(text)`` (property-tested).
    """
    return normalize_with_path(text)[0]


def normalize_with_path(text: str) -> tuple[str, int]:
    """``normalize`` plus the path taken: ``FAST`` or ``TABLE`` (offsets map char by char) or ``EXACT``.

    Three paths, cheapest first:

    1. text that is already NFKC once NBSP is a space and the deletable
       characters are gone (nearly all news): C-level regex deletion, six
       ``str.replace`` for the alef/yeh/teh forms, and a rare-character map;
    2. otherwise one ``str.translate`` over the per-character table;
    3. if that output still composes or reorders (decomposed hamza/madda),
       the exact path: deletions, NFKC, then the per-character maps.
    """
    if text.isascii():
        return text, FAST
    s = text.replace("\xa0", " ") if "\xa0" in text else text
    if _DELETE_RE.search(s) is not None:
        s = _DELETE_RE.sub("", s)
    if unicodedata.is_normalized("NFKC", s):
        for old, new in _FREQUENT:
            if old in s:
                s = s.replace(old, new)
        if _RARE_RE.search(s) is not None:
            # str.replace per character present: a dict translate of an Arabic article costs ~250 µs
            for c in set(_RARE_RE.findall(s)):
                s = s.replace(c, _RARE[c])
        return s, FAST
    out = text.translate(_table())
    if not out.isascii() and not unicodedata.is_normalized("NFC", out):
        # Decomposed hamza/madda (ا + U+0654) or out-of-order marks: NFKC
        # composes/reorders across characters, which a per-character table
        # cannot. Rare, so take the exact (slower) path for this text.
        return exact_normalize(text), EXACT
    return out, TABLE


def table_output(c: str) -> str:
    """What the per-character table makes of ``c`` (identity when not in the table)."""
    if c in _DELETED:
        return ""
    if c == "\ufdfd":
        return _RARE[c]
    out = _table().get(ord(c), c)
    return "" if out is None else out


def exact_normalize(text: str) -> str:
    """The reference semantics without camel-tools: deletions, NFKC, then the per-char maps."""
    return unicodedata.normalize("NFKC", text.translate(_PRE_TABLE)).translate(_POST_TABLE)


def normalize_reference(text: str) -> str:
    """The oracle: extra deletions, then the camel-tools chain, then the extra mappings."""
    from camel_tools.utils.dediac import dediac_ar
    from camel_tools.utils.normalize import (
        normalize_alef_ar,
        normalize_alef_maksura_ar,
        normalize_teh_marbuta_ar,
        normalize_unicode,
    )

    s = "".join(c for c in text if c not in EXTRA_DELETIONS)
    s = normalize_unicode(s)
    s = normalize_alef_ar(s)
    s = normalize_alef_maksura_ar(s)
    s = normalize_teh_marbuta_ar(s)
    s = dediac_ar(s)
    return "".join(EXTRA_MAPPINGS.get(c, c) for c in s if c not in EXTRA_DELETIONS)


if __name__ == "__main__":  # pragma: no cover
    print(normalize(sys.stdin.read()), end="")
