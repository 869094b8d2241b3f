"""Compiled multi-alias matcher: Aho-Corasick over normalized text, token-aware.

Why this shape (``shared/design/perf-baselines.md`` section 3): pyahocorasick
with a boundary check is the only exact method that stays fast at 10,000
aliases. Matching happens on a *match string*: the normalized text with
quotes, dashes, hashtag marks, underscores and every kind of whitespace
turned into single spaces and ASCII lower-cased, so an alias written
``دير الزور`` also finds ``#دير_الزور``, ``دير\\nالزور``, ``Deir ez-Zor`` and
``حقل "العمر"``. Sentence punctuation (. ، ؛ ؟ ! :) is kept, so a name never
spans two clauses.

An occurrence counts only on whole words. On the left a word may carry a
proclitic chain (و ف ب ل ك س ال and their chains: وبال، فلل، ولل); an alias
that starts with ال is also found after لل (للبوكمال). On the right only the
suffixes a keyword set asks for are allowed, so البوكمالية is not البوكمال.

Two opt-ins per pattern, for the names of a rule pack (off by default, so a
plain ``Pattern`` finds exactly what the frozen reference matcher finds):

* ``variants``: the spellings informal writers use (``informal_variants``):
  hamza seats as plain letters (القايم، القاءم), a dropped final hamza
  (اللوا), a long vowel dropped from a long word (البوكمل، الدمقراطية), the
  article's alef dropped inside a name (دير لزور), one letter dropped from a
  later word of a longer name (تنظيم الدوة الإسلامية);
* ``glue``: a missing space. A preposition glued in front (فيالميادين،
  منقسد), the next word's article or a short function word glued behind
  (العمرالنفطي، قسدفي، البصيرةشرق), and for a Latin alias the change of
  script as a boundary (باسمSDF, after bidi controls are deleted).

Offsets of a hit point into the ORIGINAL text: they are mapped back through
the whitespace collapse and the normalization (deletions, ligature
expansions) only for the hits someone displays (``original_span``).
"""

from __future__ import annotations

import functools
import gc
import re
import unicodedata
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import product
from typing import Any

import ahocorasick

from monitor.text.normalize import (
    FAST,
    FAST_SPECIAL_CHARS,
    exact_normalize,
    normalize_with_path,
    special_chars,
    table_output,
)

__all__ = ["Pattern", "PLAIN", "SENSE", "EXCLUDE", "CONTEXT", "Occurrence", "PreparedText", "Matcher", "match_form",
           "match_forms", "is_arabic", "informal_variants", "PROCLITICS", "DEFAULT_SUFFIXES", "GLUE_BEFORE",
           "GLUE_AFTER", "fold"]

_SEPARATORS = (
    "\"'`«»“”„‟‘’‚‹›″´"  # quotes and guillemets
    "-‐‑‒–—―_#@()[]{}<>/\\|*~^=+"  # dashes, hashtag and mention marks, brackets
)


def fold(normalized: str) -> str:
    """Separators -> spaces and lower case, keeping every offset (one char in, one char out)."""
    spaced = _SEP_RE.sub(" ", normalized)
    lowered = spaced.lower()
    if len(lowered) == len(spaced):
        return lowered
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in spaced)  # İ and friends


def _char_class(chars: Iterable[str]) -> str:
    cps = sorted(ord(c) for c in chars)
    parts, i = [], 0
    while i < len(cps):
        j = i
        while j + 1 < len(cps) and cps[j + 1] == cps[j] + 1:
            j += 1
        lo, hi = re.escape(chr(cps[i])), re.escape(chr(cps[j]))
        parts.append(lo if i == j else f"{lo}-{hi}")
        i = j + 1
    return "[" + "".join(parts) + "]"


# Every separator and every whitespace character except the plain space (already a space:
# replacing the ~500 spaces of an article with themselves cost 3/4 of fold's time). Written
# out (tests/test_match.py checks it is exactly what str.isspace says in all of Unicode):
# computing it cost 10 ms at every import (CLI, each worker).
_WHITESPACE = ("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
               "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
_SEP_RE = re.compile("[" + re.escape(_SEPARATORS + _WHITESPACE) + "]")
_MULTI_SPACE = re.compile("  +")
_SPACE_RE = re.compile(" ")
_SENTENCE_END = re.compile(r"[.!?؟؛;:،,…]")
_WORD_TAIL = re.compile(r"[^\W_]+")
_NON_WORD_RE = re.compile(r"[^\w ]")  # one char in, one space out; [^\W_] is exactly str.isalnum
_ASTRAL_RE = re.compile("[\U00010000-\U0010ffff]")
_DIACRITICS = frozenset("\u064b\u064c\u064d\u064e\u064f\u0650\u0651\u0652\u0670\u0640")


@functools.cache
def _non_word_bmp() -> re.Pattern[str]:
    """``[^\\w ]`` for text without astral characters, as an explicit class: sre tests a BMP class
    with a bitmap, ``\\w`` with a Unicode category lookup per character (2x slower)."""
    return re.compile(_char_class(c for c in map(chr, range(0x10000))
                                  if not (c.isalnum() or c in "_ ") and not "\ud800" <= c <= "\udfff"))


# Proclitic chains a word may carry before an alias: conjunction, then
# preposition/future marker, then the article.
_CONJ = ("", "و", "ف")
_PREP = ("", "ب", "ل", "ك", "س")
PROCLITICS: frozenset[str] = frozenset(c + p for c in _CONJ for p in _PREP) - {""}
# Before an alias that has no article of its own, the article may also come in.
_PROCLITICS_WITH_ARTICLE: frozenset[str] = frozenset(
    PROCLITICS | {c + p + "ال" for c in _CONJ for p in ("", "ب", "ك")} | {c + "لل" for c in _CONJ})
# An alias starting with ال written after ل: ل + البوكمال -> للبوكمال (we match لبوكمال after ل).
_LAM_PREFIXES: frozenset[str] = frozenset({"ل", "ول", "فل"})

# Missing spaces (``Pattern.glue``), in match-string spelling (ى -> ي): prepositions written
# against the name that follows them, and short words written against the name before them.
GLUE_BEFORE: tuple[str, ...] = ("في", "من", "علي", "الي", "عن", "مع")
GLUE_AFTER: tuple[str, ...] = ("في", "من", "علي", "الي", "عن", "مع", "بين", "قرب", "بعد", "قبل", "منذ", "خلال",
                               "حيث", "ضد", "شرق", "غرب", "شمال", "جنوب", "شرقي", "غربي", "شمالي", "جنوبي")
_GLUED_CHAINS: frozenset[str] = frozenset(c + g for c in _CONJ for g in GLUE_BEFORE)
_MAX_PREFIX = max(len(p) for p in _PROCLITICS_WITH_ARTICLE | {g + "ا" for g in _GLUED_CHAINS})

# Suffixes a keyword may carry when its set asks for them (normalized spelling:
# ة is already ه). Plural, dual, nisba and the attached pronouns.
DEFAULT_SUFFIXES: frozenset[str] = frozenset({
    "ات", "ان", "ين", "ون", "ي", "يه", "يين", "يون", "يات", "ه", "ها", "هم", "هما", "هن", "ك", "كم",
    "نا", "اته", "اتها", "اتهم", "انه", "انها", "يها", "يهم", "هات", "تين", "تان", "ته", "تها", "تهم",
})

_JOIN_LEFT = frozenset({"ابو", "البو", "بو", "عبد", "ابن", "بن", "abu", "abou", "al", "el", "ad", "ar",
                        "as", "az", "ash", "ez", "es", "ed", "ibn", "bin", "bou"})
_SPLIT_PREFIXES = ("البو", "ابو", "عبد")
# One scan decides whether an alias can have spacing variants at all (most cannot).
_VARIANT_HINT_RE = re.compile(
    r"(?:^| )(?:[^ ]{1,4} ال|(?:البو|ابو|عبد)[^\W\d_]{3}|(?:" + "|".join(sorted(_JOIN_LEFT)) + ") )")
# The same test over many forms at once ("\n" + "\n".join(forms)): a leading [ \n] instead of
# (?:^| ) lets the regex engine skip ahead to the next space or newline in C.
_VARIANT_JOINED_RE = re.compile(
    r"[ \n](?:[^ \n]{1,4} ال|(?:البو|ابو|عبد)[^\W\d_]{3}|(?:" + "|".join(sorted(_JOIN_LEFT)) + ") )")


def _hinted_forms(forms: list[str]) -> set[str]:
    """The forms that ``_VARIANT_HINT_RE`` finds something in, with one regex pass over all of them."""
    joined = "\n" + "\n".join(forms) + "\n"  # forms hold no newline (match_forms made it a space)
    rfind, find = joined.rfind, joined.find
    out = set()
    for p in [m.start() + 1 for m in _VARIANT_JOINED_RE.finditer(joined)]:
        out.add(joined[rfind("\n", 0, p) + 1:find("\n", p)])
    return out


def _scan_forms(keys: list[str]) -> list[str]:
    """Keys as they appear in a scan string: non-alphanumeric characters -> spaces (one pass)."""
    out = _NON_WORD_KEY_RE.sub(" ", "\x00".join(keys)).replace("_", " ").split("\x00")
    if len(out) != len(keys):  # pragma: no cover - keys never hold NUL (match_forms)
        return [_scan_form(k) for k in keys]
    return out


def _scan_form(key: str) -> str:
    return _NON_WORD_KEY_RE.sub(" ", key).replace("_", " ")


# and "_" (a str.replace after it: one character class alone scans twice as fast as "[...]|_")
_NON_WORD_KEY_RE = re.compile(r"[^\w \x00]")


_ARABIC_RE = re.compile("[\u0600-\u06ff]")
_ARABIC_WORD_RE = re.compile("[\u0621-\u064a]+")


def is_arabic(text: str) -> bool:
    return _ARABIC_RE.search(text) is not None


def match_form(text: str) -> str:
    """The match-string form of a short text (alias, phrase): normalized, separators collapsed."""
    return " ".join(fold(normalize_with_path(text)[0]).split())


def match_forms(texts: list[str]) -> list[str]:
    """``match_form`` of many texts with two translate calls in all (fast rule loading)."""
    joined = "\x00".join(texts)
    if joined.count("\x00") != len(texts) - 1:
        joined = "\x00".join(t.replace("\x00", " ") for t in texts)
    # fold() made every whitespace character a space: collapse runs, trim around each NUL (runs
    # are single spaces by then, so two str.replace do it; the regex " ?\x00 ?" took 10x longer)
    folded = _MULTI_SPACE.sub(" ", fold(normalize_with_path(joined)[0]))
    folded = folded.replace(" \x00", "\x00").replace("\x00 ", "\x00")
    out = folded.strip(" ").split("\x00")
    if len(out) != len(texts):  # pragma: no cover - NFKC never creates NUL
        return [match_form(t) for t in texts]
    return out


def _variants(form: str) -> set[str]:
    """Spacing variants real news uses: دير الزور / ديرالزور, البو كمال / البوكمال."""
    tokens = form.split(" ")
    out = {form}
    # split a fused kunya/abd prefix: البوكمال -> البو كمال
    split = False
    split_tokens: list[str] = []
    if "بو" in form or "عبد" in form:  # in البو and ابو
        for tok in tokens:
            if tok.startswith(_SPLIT_PREFIXES):
                for pre in _SPLIT_PREFIXES:
                    if tok.startswith(pre) and len(tok) >= len(pre) + 3:
                        split_tokens += (pre, tok[len(pre):])
                        split = True
                        break
                else:
                    split_tokens.append(tok)
            else:
                split_tokens.append(tok)
    for toks in (tokens, split_tokens) if split else (tokens,):
        # Fusing happens in short compound names (ديرالزور, رأسالعين, عبدالله), not in
        # phrases (never سورياالديمقراطية): a short first word, or a kunya/article word.
        gaps = []
        for i in range(len(toks) - 1):
            tok = toks[i]
            if tok in _JOIN_LEFT or (len(tok) <= 4 and toks[i + 1].startswith("ال")):
                gaps.append(i)
                if len(gaps) == 3:
                    break
        out.add(" ".join(toks))
        if not gaps:
            continue
        if len(gaps) == 1:  # the common case: the spaced form (above) and the fused one
            g = gaps[0]
            out.add(" ".join(toks[:g] + [toks[g] + toks[g + 1]] + toks[g + 2:]))
            continue
        seps = [" "] * len(toks)
        seps[-1] = ""
        for choice in product((" ", ""), repeat=len(gaps)):
            for g, sep in zip(gaps, choice, strict=False):
                seps[g] = sep
            out.add("".join([t + sep for t, sep in zip(toks, seps, strict=True)]))
    return out


_HAMZA_SEATS = {"ئ": "يء", "ؤ": "وء"}
_LONG_VOWELS = frozenset("اوي")


def informal_variants(form: str) -> set[str]:
    """One-edit spellings of an Arabic alias (match form) that informal writers use.

    Kept to edits that rarely make another word or phrase: a hamza seat written
    as its plain letter or a bare hamza (القائم -> القايم، القاءم), a final
    hamza dropped (اللواء -> اللوا), the article's alef dropped in a later word
    of a name (دير لزور), and a dropped letter:

    * a long vowel inside a word of at least six letters after its article
      (البوكمال -> البوكمل; never بوكمال -> بكمال "with perfection", nor
      البصيرة -> البصرة: too short);
    * in a later word of a two-word name, a long vowel if the word has five
      letters or more after the article (سوريا الدمقراطية; not الجيش السري);
    * in a later word of a longer name, any inner letter of a word of four
      letters or more (تنظيم الدوة الإسلامية): the other words pin the phrase down.
    """
    words = form.split(" ")
    out: set[str] = set()
    for wi, word in enumerate(words):
        if _ARABIC_WORD_RE.fullmatch(word) is None:
            continue

        def put(new: str, wi: int = wi) -> None:
            out.add(" ".join(words[:wi] + [new] + words[wi + 1:]))

        for i, c in enumerate(word):
            for seat in _HAMZA_SEATS.get(c, ""):
                put(word[:i] + seat + word[i + 1:])
        if word.endswith("اء") and len(word) > 3:
            put(word[:-1])
        article = word.startswith("ال") and len(word) > 4
        core = len(word) - 2 if article else len(word)
        later = wi > 0
        if later and article:
            put(word[1:])
        for i in range((2 if article else 0) + 1, len(word) - 1):
            vowel = word[i] in _LONG_VOWELS
            if ((vowel and article and core >= 6) or (later and len(words) == 2 and vowel and core >= 5)
                    or (later and len(words) > 2 and core >= 4)):
                put(word[:i] + word[i + 1:])
    out.discard(form)
    return out


@dataclass(frozen=True)
class Pattern:
    """One alias to find. ``group`` is the entity or keyword-set id it belongs to.

    ``kind`` lets the caller tell aliases from context words and exclusion
    phrases; ``clitics`` allows proclitic chains; ``suffixes`` lists the
    word endings allowed after the alias (empty: whole word only);
    ``variants`` adds ``informal_variants``; ``glue`` finds the alias when a
    space is missing before or after it (see the module docstring).
    ``article=False`` keeps the article out of the proclitics of an alias that
    has none (حدود when الحدود is listed too: one occurrence, not two).
    """

    group: str
    alias: str
    kind: str = "alias"
    clitics: bool = True
    suffixes: frozenset[str] = frozenset()
    tag: int = 0
    variants: bool = False
    glue: bool = False
    role: int = 0  # for the caller: PLAIN, SENSE, EXCLUDE or CONTEXT (one int test per occurrence)
    article: bool = True  # an alias without the article may be found with it (False: its group lists that form)


#: ``Pattern.role`` values a rule set gives its patterns.
PLAIN, SENSE, EXCLUDE, CONTEXT = 0, 1, 2, 3


# A pattern found in a ``PreparedText``: ``(pattern, start, end)``, ``[start, end)`` in
# match-string coordinates. A plain tuple: building a NamedTuple per raw match costs ~4x.
Occurrence = tuple[Pattern, int, int]
_Append = Callable[[Occurrence], None]
# (pattern, found through its article-less key, the proclitic chains it accepts)
_Entry = tuple[Pattern, bool, frozenset[str]]
# An automaton value: (chars back to the key's start, kind flags, patterns at a word start,
# patterns found through their article-less key after a bare alef, entries (for _MULTI: values),
# the key (verified against the match string), the accepted chains of a single-pattern key
# (None: look at each entry), characters to trim off the end (glued words)).
_Value = tuple[int, int, tuple[Pattern, ...], tuple[Pattern, ...], tuple[Any, ...], str,
               frozenset[str] | None, int]


class PreparedText:
    """One field's text in the forms the matcher needs; maps offsets back lazily."""

    __slots__ = ("original", "_normalized", "mode", "match", "_runs", "_pieces", "_sentences", "_spaces",
                 "_scan", "_points")

    def __init__(self, original: str) -> None:
        self.original = original
        # Normalization then separator folding; offsets are mapped back only for displayed hits.
        self._normalized, self.mode = normalize_with_path(original)
        spaced = fold(self._normalized)
        # The runs of spaces the collapse removed are only looked for when an offset is mapped back:
        # until then ``_runs`` holds the uncollapsed string.
        self._runs: str | tuple[list[int], list[int]] | None
        if "  " in spaced:
            self._runs = spaced
            self.match = _MULTI_SPACE.sub(" ", spaced)
        else:
            self._runs = None
            self.match = spaced
        self._pieces: tuple[list[int], list[tuple[int, int, int, int]]] | None = None
        self._sentences: list[int] | None = None
        self._spaces: list[int] | None = None
        self._scan: str | None = None
        self._points: list[int] | None = None

    def scan(self) -> str:
        """The scan string: every non-alphanumeric character a space, one space appended (same
        offsets as ``match``; ``scan()[-1]`` is the appended space, so index -1 reads as "start of
        text")."""
        sc = self._scan
        if sc is None:
            m = self.match
            pattern = _NON_WORD_RE if _ASTRAL_RE.search(m) is not None else _non_word_bmp()
            sc = self._scan = pattern.sub(" ", m) + " "
        return sc

    @property
    def normalized(self) -> str:
        return self._normalized

    @property
    def per_char(self) -> bool:
        """Whether normalization mapped character by character (offsets map without clusters)."""
        return bool(self.mode)

    # --- match string -> normalized text -------------------------------------------------
    def to_normalized(self, p: int) -> int:
        """A match-string offset -> the offset of the same character in the normalized text."""
        runs = self._runs
        if runs is None:
            return p
        if isinstance(runs, str):
            # -> (run starts in match-string coordinates, characters removed up to and including each run)
            starts, removed, total = [], [], 0
            for m in _MULTI_SPACE.finditer(runs):
                a, b = m.span()
                starts.append(a - total)
                total += (b - a) - 1
                removed.append(total)
            runs = self._runs = (starts, removed)
        starts, removed = runs
        i = bisect_right(starts, p - 1) - 1  # runs that start strictly before p
        return p + removed[i] if i >= 0 else p

    def normalized_span(self, start: int, end: int) -> tuple[int, int]:
        """``[start, end)`` in match-string coordinates -> the same span of the normalized text."""
        return self.to_normalized(start), self.to_normalized(end - 1) + 1

    # --- normalized text -> original -------------------------------------------------------
    def _build_pieces(self) -> tuple[list[int], list[tuple[int, int, int, int]]]:
        """Non-identity pieces (x_start, x_len, n_start, n_len) of the original->normalized map."""
        pieces: list[tuple[int, int, int, int]] = []
        x = self.original
        if self.mode == FAST:  # deletions, and ﷽ expanded
            shift = 0
            for m in _FAST_SPECIAL_RE.finditer(x):
                i = m.start()
                out_len = 0 if m.group() != "\ufdfd" else len(table_output("\ufdfd"))
                pieces.append((i, 1, i + shift, out_len))
                shift += out_len - 1
        elif self.mode:
            shift = 0
            for m in _special_re().finditer(x):
                i = m.start()
                out_len = len(table_output(m.group()))
                pieces.append((i, 1, i + shift, out_len))
                shift += out_len - 1
        else:
            # Rare exact path (decomposed hamza/madda): align by clusters (a base
            # character and the marks/deleted characters that follow it).
            starts = [i for i, c in enumerate(x)
                      if i == 0 or (unicodedata.combining(c) == 0 and table_output(c) != "")]
            starts.append(len(x))
            n = 0
            ok = True
            for a, b in zip(starts, starts[1:], strict=False):
                seg = exact_normalize(x[a:b])
                if self.normalized[n:n + len(seg)] != seg:
                    ok = False
                    break
                pieces.append((a, b - a, n, len(seg)))
                n += len(seg)
            if not ok or n != len(self.normalized):
                pieces = [(0, len(x), 0, len(self.normalized))]
        return [p[2] for p in pieces], pieces

    def _x_start(self, n: int) -> int:
        if self._pieces is None:
            self._pieces = self._build_pieces()
        n_starts, pieces = self._pieces
        i = bisect_right(n_starts, n) - 1
        if i < 0:
            return n
        xs, xl, ns, nl = pieces[i]
        if n < ns + nl:
            return xs
        return xs + xl + (n - ns - nl)

    def _x_end(self, n_end: int) -> int:
        if n_end <= 0:
            return 0
        if self._pieces is None:
            self._pieces = self._build_pieces()
        n_starts, pieces = self._pieces
        n = n_end - 1
        i = bisect_right(n_starts, n) - 1
        if i >= 0:
            xs, xl, ns, nl = pieces[i]
            end = xs + xl if n < ns + nl else xs + xl + (n - ns - nl) + 1
        else:
            end = n + 1
        x = self.original
        while end < len(x) and x[end] in _DIACRITICS:  # keep harakat on the last letter
            end += 1
        return end

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """``[start, end)`` in match-string coordinates -> offsets into the original text."""
        n_start = self.to_normalized(start)
        n_end = self.to_normalized(end - 1) + 1
        return self._x_start(n_start), self._x_end(n_end)

    def original_spans(self, spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
        """``original_span`` of many spans in one loop (what ``rules test`` shows: every hit)."""
        if self.mode == FAST and "\ufdfd" not in self.original:  # only deletions and collapsed runs
            return self._deleted_spans(spans)
        self.to_normalized(0)  # the run table, if the text had runs
        runs = self._runs
        starts, removed = runs if isinstance(runs, tuple) else ([], [])
        if self._pieces is None:
            self._pieces = self._build_pieces()
        n_starts, pieces = self._pieces
        if not starts and not pieces:
            return list(spans)  # nothing collapsed, deleted or expanded: the identity
        if all(xl == 1 and nl == 0 for _, xl, _, nl in pieces):
            return self._shifted_spans(spans, starts, removed, n_starts)
        x = self.original
        size = len(x)
        diacritics = _DIACRITICS
        out = []
        for start, end in spans:
            i = bisect_right(starts, start - 1) - 1
            n = start + removed[i] if i >= 0 else start
            j = bisect_right(n_starts, n) - 1
            if j < 0:
                a = n
            else:
                xs, xl, ns, nl = pieces[j]
                a = xs if n < ns + nl else xs + xl + (n - ns - nl)
            i = bisect_right(starts, end - 2) - 1
            n = end - 1 + (removed[i] if i >= 0 else 0)  # the last character, normalized
            if n < 0:
                out.append((a, 0))
                continue
            j = bisect_right(n_starts, n) - 1
            if j >= 0:
                xs, xl, ns, nl = pieces[j]
                b = xs + xl if n < ns + nl else xs + xl + (n - ns - nl) + 1
            else:
                b = n + 1
            while b < size and x[b] in diacritics:  # keep harakat on the last letter
                b += 1
            out.append((a, b))
        return out

    def _deleted_spans(self, spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
        """``original_spans`` when the match string is the original with characters taken out and
        others replaced one for one (the fast normalization path without ﷽, the common case).

        With ``r_0 < r_1 < ...`` the original positions of the characters taken out (deleted by
        normalization, or spaces of a collapsed run), match position ``p`` is original position
        ``p + #{i: r_i - i <= p}``: one bisection in ``points = [r_i - i]``, built once per text."""
        points = self._points
        if points is None:
            points = self._points = self._removed_points()
        x = self.original
        size = len(x)
        diacritics = _DIACRITICS
        out = []
        if not points:
            for start, end in spans:
                b = end if end > 0 else 0
                while b < size and x[b] in diacritics:  # keep harakat on the last letter
                    b += 1
                out.append((start, b))
            return out
        for start, end in spans:
            a = start + bisect_right(points, start)
            last = end - 1
            b = last + bisect_right(points, last) + 1 if last >= 0 else 0
            while b < size and x[b] in diacritics:  # keep harakat on the last letter
                b += 1
            out.append((a, b))
        return out

    def _removed_points(self) -> list[int]:
        """``r_i - i`` for the original positions ``r_i`` of the characters the match string lacks
        (see ``_deleted_spans``)."""
        deleted = [m.start() for m in _FAST_SPECIAL_RE.finditer(self.original)]
        runs = self._runs
        gone: list[int] = []  # the spaces of a run after its first, in normalized-text coordinates
        if isinstance(runs, str):
            # the runs through a C-level split at every double space (a regex scan took 1.5x as long)
            parts = runs.split("  ")
            p = len(parts[0])
            for part in parts[1:]:  # a double space at ``p``: its second space goes, and its first
                if p and runs[p - 1] == " ":  # if a space precedes it (the run is longer)
                    gone.append(p)
                gone.append(p + 1)
                p += 2
                if part[:1] == " ":  # the odd space of a run of three, five...
                    gone.append(p)
                p += len(part)
        elif runs is not None:
            prev = 0
            for start, total in zip(*runs, strict=True):
                gone.extend(range(start + prev + 1, start + total + 1))
                prev = total
        if deleted:
            # normalized position n is original position n + #{j: deleted[j] - j <= n}
            shifts = [d - j for j, d in enumerate(deleted)]
            removed = sorted(deleted + [n + bisect_right(shifts, n) for n in gone]) if gone else deleted
        else:
            removed = gone
        return [r - i for i, r in enumerate(removed)]

    def _shifted_spans(self, spans: Iterable[tuple[int, int]], starts: list[int], removed: list[int],
                       deleted: list[int]) -> list[tuple[int, int]]:
        """``original_spans`` when normalization only deleted characters (the common case): the
        original offset of match position ``p`` is ``p`` plus a shift that changes only where a run
        of spaces was collapsed or a character deleted, so one bisection in those breakpoints maps it."""
        points, shifts = [0], [0]
        i = j = 0
        collapsed = count = 0
        at = 0
        end_of_runs, end_of_deleted = len(starts), len(deleted)
        while i < end_of_runs or j < end_of_deleted:
            run_at = starts[i] + 1 if i < end_of_runs else None  # p > a run's start: its spaces are behind
            deleted_at = max(deleted[j] - collapsed, at) if j < end_of_deleted else None
            if deleted_at is None or (run_at is not None and run_at <= deleted_at):
                assert run_at is not None
                at, collapsed = run_at, removed[i]
                i += 1
            else:
                at = deleted_at  # p + collapsed reaches the normalized position the character left
                count += 1
                j += 1
            if points[-1] == at:
                shifts[-1] = collapsed + count
            else:
                points.append(at)
                shifts.append(collapsed + count)
        x = self.original
        size = len(x)
        diacritics = _DIACRITICS
        out = []
        for start, end in spans:
            a = start + shifts[bisect_right(points, start) - 1]
            last = end - 1
            b = last + shifts[bisect_right(points, last) - 1] + 1 if last >= 0 else 0
            while b < size and x[b] in diacritics:  # keep harakat on the last letter
                b += 1
            out.append((a, b))
        return out

    # --- positions for proximity rules -------------------------------------------------------
    def word_index(self, pos: int) -> int:
        """Index of the word at match-string position ``pos`` (spaces counted)."""
        if self._spaces is None:
            self._spaces = [m.start() for m in _SPACE_RE.finditer(self.match)]
        return bisect_right(self._spaces, pos - 1)

    def sentence_index(self, pos: int) -> int:
        if self._sentences is None:
            self._sentences = [m.start() for m in _SENTENCE_END.finditer(self.match)]
        return bisect_right(self._sentences, pos)

    def is_quoted(self, start: int, end: int) -> bool:
        """True when the occurrence is directly wrapped in quotes: «النمر», "العمر"."""
        n_start, n_end = self.normalized_span(start, end)
        text = self.normalized
        before = text[n_start - 1] if n_start > 0 else ""
        after = text[n_end] if n_end < len(text) else ""
        return before in _QUOTES and after in _QUOTES


_FAST_SPECIAL_RE = re.compile(_char_class(FAST_SPECIAL_CHARS))


@functools.cache
def _special_re() -> re.Pattern[str]:
    return re.compile(_char_class(special_chars()))


_QUOTES = frozenset("\"'«»“”„‟‘’‹›")


class Matcher:
    """All patterns compiled into one Aho-Corasick automaton (immutable once built).

    An Arabic alias with the article (البوكمال) is stored once, without its
    alef (لبوكمال): the same key then finds البوكمال, وبالبوكمال (alef before
    it) and للبوكمال (ل + article with the alef elided), one raw match each.

    The automaton runs over a *scan string* (``PreparedText.scan``): the match
    string with every non-alphanumeric character turned into a space, plus one
    trailing space. Every key is stored with a trailing space, so a raw match
    already has a word boundary on its right and the C scan drops the matches
    that end inside a longer word (most of them). Keys that may carry a suffix
    are stored a second time without the space, for the suffixed forms only.
    Keys holding a space or punctuation are checked against the match string
    (``دير الزور`` must not match ``دير.الزور``). Glued forms are keys of their
    own (the alias followed by the glued word), so a text without a missing
    space costs nothing for them. Per raw match, the common case is one character
    lookup (start of word) and a tuple append.
    """

    def __init__(self, patterns: Iterable[Pattern]) -> None:
        self.patterns: list[Pattern] = list(patterns)
        # The build allocates a few tuples per key, all long-lived and acyclic: collecting
        # young objects while it runs (dozens of passes for 10,000 aliases, sometimes a full
        # one) finds nothing to free. Paused for the build only; one young pass follows later.
        paused = gc.isenabled()
        if paused:
            gc.disable()
        try:
            self._build()
        finally:
            if paused:
                gc.enable()

    def _build(self) -> None:
        pats = self.patterns
        forms = match_forms([p.alias for p in pats])
        # One regex pass over all forms picks the few that can have spacing variants.
        hinted = _hinted_forms(forms)
        scans = _scan_forms(forms)
        pwa, pro, none = _PROCLITICS_WITH_ARTICLE, PROCLITICS, frozenset[str]()
        ok_pwa, ok_pro = _NO_PREFIX | pwa, _NO_PREFIX | pro
        # key -> its automaton value, built once; keys shared by several patterns are rebuilt
        # from their entry lists after the loop (``shared``); keys stored under another scan
        # key or with a suffix copy are added last (``special``: key -> scan-string key).
        values: dict[str, _Value] = {}
        shared: dict[str, list[_Entry]] = {}
        special: dict[str, str] = {}
        suffixable: dict[str, set[str]] = {}  # key -> the first letters of the suffixes it may carry
        glued: dict[str, str] = {}  # key -> its scan key, for patterns that accept a missing space
        late = False  # a key became special after other keys were added: ``special`` is out of order
        get = values.get
        for pat, form, sform in zip(pats, forms, scans, strict=True):
            if not form:
                continue
            c0 = form[0]
            clitics = pat.clitics and (
                "\u0600" <= c0 <= "\u06ff" or (not form.isascii() and _ARABIC_RE.search(form) is not None))
            suffixed = bool(pat.suffixes)
            glue = pat.glue and not suffixed
            before, ok = (pwa, ok_pwa) if pat.article else (pro, ok_pro)
            keyed: Iterable[tuple[str, _Entry, str]]
            if form not in hinted and not pat.variants:  # nearly all forms: one key, its scan form known
                if clitics and c0 == "ا" and form.startswith("ال") and len(form) > 3:
                    keyed = ((form[1:], (pat, True, _glued(pro, glue)), sform[1:]),)
                else:
                    keyed = ((form, (pat, False, _glued(before if clitics else none, glue)), sform),)
                if glue:
                    for key, _entry, skey in keyed:
                        glued[key] = skey
            else:
                punct = sform != form
                spaced = _variants(form) if form in hinted else {form}
                every = set(spaced)
                if pat.variants and clitics:
                    for variant in spaced:
                        every |= informal_variants(variant)
                keyed = []
                for variant in sorted(every):
                    if clitics and variant.startswith("ال") and len(variant) > 3:
                        key, entry = variant[1:], (pat, True, _glued(pro, glue))
                    else:
                        key, entry = variant, (pat, False, _glued(before if clitics else none, glue))
                    skey = _scan_form(key) if punct else key
                    keyed.append((key, entry, skey))
                    if glue and variant in spaced:
                        glued[key] = skey
            for key, entry, skey in keyed:
                old = get(key)
                if old is None:
                    verify = _VERIFY if (skey != key or " " in key) else 0
                    if glue and key.isascii():
                        verify |= _SCRIPT  # a Latin alias glued to Arabic letters: the general path
                    if entry[1]:
                        values[key] = (len(key), verify, (), (pat,), (entry,), key, _lam_ok(glue), 0)
                    else:
                        values[key] = (len(key), verify, (pat,), (), (entry,), key,
                                       (ok | _GLUED_CHAINS if glue else ok) if clitics else _NO_PREFIX, 0)
                    if suffixed or skey != key:
                        special[key] = skey
                        if suffixed:
                            suffixable.setdefault(key, set()).update(x[0] for x in pat.suffixes if x)
                    continue
                lst = shared.get(key)
                same = (pat.group, pat.role, pat.tag, entry[1], entry[2])
                if any((e[0].group, e[0].role, e[0].tag, e[1], e[2]) == same for e in (lst or old[4])):
                    continue  # another spelling of the same entity that finds the same: one occurrence
                if lst is None:
                    shared[key] = [old[4][0], entry]
                else:
                    lst.append(entry)
                if glue and key.isascii() and not old[1] & _SCRIPT:
                    values[key] = (old[0], old[1] | _SCRIPT) + old[2:]
                if suffixed:
                    suffixable.setdefault(key, set()).update(x[0] for x in pat.suffixes if x)
                    if key not in special:
                        special[key] = key  # no punctuation (else it would be there already)
                        late = True
        for key, entries in shared.items():
            plain = tuple(e[0] for e in entries if not e[1])
            lamp = tuple(e[0] for e in entries if e[1])
            old = values[key]
            values[key] = (old[0], old[1], plain, lamp, tuple(entries), key, None, 0)
        regular = {k: v for k, v in values.items() if k not in special} if special else values
        # every key with its trailing space
        keys: dict[str, _Value] = {k + " ": v for k, v in regular.items()}
        later: list[tuple[str, _Value]] = []
        if special:
            for key in ([k for k in values if k in special] if late else special):
                skey = special[key]
                value = values[key]
                later.append((skey + " ", value))
                # the suffixed forms: one key per letter a suffix can start with, so a key
                # followed by a space (the copy above reports it) is not a raw match here
                for initial in sorted(suffixable.get(key, ())):
                    later.append((skey + initial, (value[0], value[1] | _SUFFIXED) + value[2:]))
        for key, skey in glued.items():
            later += _glue_keys(values[key], skey)
        # Keys with punctuation, the suffix copies and the glued forms may look like another key in
        # the scan string (U.S. / u s, "X." bare / "X" + space): such values are merged, each checked.
        kget = keys.get
        for s_key, v in later:
            other = kget(s_key)
            if other is not None:
                subs = other[4] if other[1] & _MULTI else (other,)
                v = (0, _MULTI, (), (), subs + (v,), "", None, 0)
            keys[s_key] = v
        # pyahocorasick looks a node's children up one by one in the order they were added: keys
        # added in the order of their letters' frequency in news text put the common letters first
        # at every node, and a key that starts with a space (never found: the scan string has no
        # NUL) makes a space cost one comparison at the root instead of all of them. ~15% of a scan.
        automaton = ahocorasick.Automaton()
        add = automaton.add_word
        if keys:
            add(" \x00", _NEVER)
            deque(map(add, ordered := sorted(keys, key=_trie_order), map(keys.__getitem__, ordered)), maxlen=0)
        self.size = len(values)
        self._automaton = automaton
        if values:
            automaton.make_automaton()

    def prepare(self, text: str) -> PreparedText:
        return PreparedText(text)

    def find(self, prepared: PreparedText) -> list[Occurrence]:
        """Every whole-word occurrence of every pattern in ``prepared``.

        ``(pattern, start, end)`` in match-string coordinates, ordered by the
        end of the raw key match.
        """
        if not self.size:
            return []
        m = prepared.match
        s = prepared.scan()
        startswith = m.startswith
        out: list[Occurrence] = []
        append = out.append
        for end, value in self._automaton.iter(s):
            back, kind, plain, lamp, entries, key, ok, _trim = value
            st = end - back
            if kind:
                if kind != _VERIFY:  # suffixes, look-alike keys, glued forms: the general path
                    if kind & _MULTI:
                        for sub in entries:
                            _find_one(append, m, s, end, sub)
                    else:
                        _find_one(append, m, s, end, value)
                    continue
                if not startswith(key, st):  # a space in the key, "." in the text
                    continue
            c = s[st - 1]
            if c == " ":  # whole word (s[-1] is the appended space: start of text)
                for pat in plain:
                    append((pat, st, end))
                continue
            if c == "ا" and lamp and s[st - 2] == " ":  # البوكمال found through its key لبوكمال
                for pat in lamp:
                    append((pat, st - 1, end))
                continue
            # a proclitic chain: the word starts after the last space within reach
            lo = st - _MAX_PREFIX - 1
            ws = s.rfind(" ", lo if lo > 0 else 0, st) + 1
            if ws == 0 and lo > 0:
                continue
            if ok is not None:
                if s[ws:st] in ok:
                    append((entries[0][0], ws, end))
            else:
                _add_general(append, entries, s[ws:st], "", ws, end)
        return out


# The characters of news text, most frequent first (space, Arabic letters, Latin letters, digits).
_FREQUENT_FIRST = str.maketrans({c: chr(1 + i) for i, c in enumerate(
    " اليمهروتندعقفبسكحشطجصخزظضذثغئءؤ" "etaoinsrhldcumfpgwybvkxjqz" "0123456789")})


def _trie_order(key: str) -> str:
    """A sort key putting keys in the order of their letters' frequency (``Matcher._build``)."""
    return key.translate(_FREQUENT_FIRST)


def _glued(allowed: frozenset[str], glue: bool) -> frozenset[str]:
    return allowed | _GLUED_CHAINS if glue and allowed else allowed


def _lam_ok(glue: bool) -> frozenset[str]:
    return _LAM_OK_GLUED if glue else _LAM_OK


def _glue_keys(value: _Value, skey: str) -> list[tuple[str, _Value]]:
    """The automaton entries that find an alias with a word glued behind it (one key per word).

    Only the patterns that accept a missing space; the alias keeps its own span (the glued word
    is trimmed off). A Latin key also gets a copy without its trailing space: the script change
    to an Arabic letter is its boundary.
    """
    entries = tuple(e for e in value[4] if e[0].glue)
    plain = tuple(e[0] for e in entries if not e[1])
    lamp = tuple(e[0] for e in entries if e[1])
    ok = value[6] if len(entries) == len(value[4]) else None
    back, kind, key = value[0], value[1] & (_VERIFY | _SCRIPT), value[5]
    if skey.isascii():
        return [(skey, (back - 1, kind | _GLUED | _SCRIPT_AFTER, plain, lamp, entries, key, ok, -1))]
    out: list[tuple[str, _Value]] = [
        (skey + "ال", (back + 1, kind | _GLUED | _GLUED_ARTICLE, plain, lamp, entries, key, ok, 1))]
    out += [(skey + word + " ", (back + len(word), kind | _GLUED, plain, lamp, entries, key, ok, len(word)))
            for word in GLUE_AFTER]
    return out


def _find_one(append: _Append, m: str, s: str, end: int, value: _Value) -> None:
    """``Matcher.find`` for one raw match of any kind (the loop inlines the common kind 0)."""
    back, kind, plain, lamp, entries, key, _ok, trim = value
    st = end - back
    if kind & _VERIFY and not m.startswith(key, st):
        return
    if kind & _GLUED:
        if kind & _GLUED_ARTICLE and s[end + 1] == " ":  # the glued ال must start a word
            return
        if kind & _SCRIPT_AFTER and s[end + 1] < "\x80":  # an ASCII character after it
            return
        e = we = end - trim
        suffix = ""
    elif kind & _SUFFIXED:
        e = end  # the key ends with the suffix's first letter
        we = _WORD_TAIL.match(s, e).end()  # type: ignore[union-attr]  # s[e] is alphanumeric
        suffix = s[e:we]
    else:
        e = we = end
        suffix = ""
    if not suffix:
        c = s[st - 1]
        if c == " " or (kind & _SCRIPT and c >= "\x80"):
            for pat in plain:
                append((pat, st, e))
            return
        if c == "ا" and lamp and s[st - 2] == " ":
            for pat in lamp:
                append((pat, st - 1, e))
            return
    ws = _word_start(s, st)
    if ws >= 0:
        _add_general(append, entries, s[ws:st], suffix, ws, we)


_VERIFY = 1
_SUFFIXED = 2
_MULTI = 4
_GLUED = 8  # a word glued behind the alias: trim it off the end
_GLUED_ARTICLE = 16  # ... that word is the next word's article: a letter must follow it
_SCRIPT = 32  # a Latin alias of a glue pattern: an Arabic letter before it is a boundary
_SCRIPT_AFTER = 64  # ... and after it (the copy without the trailing space)
# An automaton value that finds nothing (a _MULTI without entries), for a key never found.
_NEVER: _Value = (0, _MULTI, (), (), (), "", None, 0)
# What a single-pattern key accepts before it (the rules of ``_add_general`` as sets).
_NO_PREFIX: frozenset[str] = frozenset({""})
_LAM_OK: frozenset[str] = frozenset({"ا"} | {p + "ا" for p in PROCLITICS}) | _LAM_PREFIXES
_LAM_OK_GLUED: frozenset[str] = _LAM_OK | {g + "ا" for g in _GLUED_CHAINS}


def _word_start(s: str, st: int) -> int:
    """Start of the word that ends in a proclitic chain before ``st``; -1 if it is too long."""
    lo = st - _MAX_PREFIX - 1
    sp = s.rfind(" ", lo if lo > 0 else 0, st)
    if sp >= 0:
        return sp + 1
    return -1 if lo > 0 else 0


def _add_general(append: _Append, entries: tuple[_Entry, ...], prefix: str, suffix: str, ws: int,
                 we: int) -> None:
    """An occurrence with a proclitic chain and/or a suffix: check each pattern's allowances."""
    for pat, lam, allowed in entries:
        if suffix and suffix not in pat.suffixes:
            continue
        if lam:
            # لبوكمال: البوكمال with an allowed chain before its alef, or after ل / ول / فل
            if prefix.endswith("ا"):
                if len(prefix) > 1 and prefix[:-1] not in allowed:
                    continue
            elif prefix not in _LAM_PREFIXES:
                continue
        elif prefix and prefix not in allowed:
            continue
        append((pat, ws, we))
