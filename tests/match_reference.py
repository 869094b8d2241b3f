"""FROZEN pre-optimization copy of monitor/match.py (commit 3187377): the slow oracle for test_match.py.

Do not optimize or edit: the property test proves the fast matcher finds exactly what this finds.


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

Offsets of a hit point into the ORIGINAL text: they are mapped back through
the whitespace collapse and the normalization (deletions, ligature
expansions) only for texts that have hits.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import product
from typing import Any

import ahocorasick

from monitor.text.normalize import (
    SPECIAL_CHARS,
    exact_normalize,
    normalize_with_path,
    table_output,
)

__all__ = ["Pattern", "Occurrence", "PreparedText", "Matcher", "match_form", "is_arabic",
           "PROCLITICS", "DEFAULT_SUFFIXES"]

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
_SEP_RE = re.compile("[" + re.escape(_SEPARATORS) + r"\s]")
_MULTI_SPACE = re.compile("  +")
_SPACE_RE = re.compile(" ")
_SENTENCE_END = re.compile(r"[.!?؟؛;:،,…]")
_WORD_TAIL = re.compile(r"[^\W_]+")
_DIACRITICS = frozenset("\u064b\u064c\u064d\u064e\u064f\u0650\u0651\u0652\u0670\u0640")

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
_MAX_PREFIX = max(len(p) for p in _PROCLITICS_WITH_ARTICLE)

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
_SPLIT_RE = re.compile(r"(?:^| )(?:البو|ابو|عبد)\w{3}")


_ARABIC_RE = re.compile("[\u0600-\u06ff]")


def is_arabic(text: str) -> bool:
    return _ARABIC_RE.search(text) is not None


def match_form(text: str) -> str:
    """The match-string form of a short text (alias, phrase): normalized, separators collapsed."""
    return " ".join(fold(normalize_with_path(text)[0]).split())


def match_forms(texts: list[str]) -> list[str]:
    """``match_form`` of many texts with two translate calls in all (fast rule loading)."""
    joined = "\x00".join(t.replace("\x00", " ") for t in texts)
    folded = fold(normalize_with_path(joined)[0]).split("\x00")
    if len(folded) != len(texts):  # pragma: no cover - NFKC never creates NUL
        return [match_form(t) for t in texts]
    return [" ".join(f.split()) for f in folded]


def spelling_variants(form: str) -> set[str]:
    """Spacing variants real news uses: دير الزور / ديرالزور, البو كمال / البوكمال."""
    if _VARIANT_HINT_RE.search(form) is None:
        return {form}
    tokens = form.split(" ")
    out = {form}
    # split a fused kunya/abd prefix: البوكمال -> البو كمال
    split_tokens: list[str] = []
    for tok in tokens:
        for pre in _SPLIT_PREFIXES:
            if tok.startswith(pre) and len(tok) >= len(pre) + 3:
                split_tokens.extend([pre, tok[len(pre):]])
                break
        else:
            split_tokens.append(tok)
    for toks in {tuple(tokens), tuple(split_tokens)}:
        # Fusing happens in short compound names (ديرالزور, رأسالعين, عبدالله), not in
        # phrases (never سورياالديمقراطية): a short first word, or a kunya/article word.
        gaps = [i for i in range(len(toks) - 1)
                if toks[i] in _JOIN_LEFT or (len(toks[i]) <= 4 and toks[i + 1].startswith("ال"))]
        gaps = gaps[:3]
        for choice in product((False, True), repeat=len(gaps)):
            joined = set(g for g, j in zip(gaps, choice, strict=True) if j)
            text = ""
            for i, tok in enumerate(toks):
                text += tok
                if i < len(toks) - 1:
                    text += "" if i in joined else " "
            out.add(text)
    return out


@dataclass(frozen=True)
class Pattern:
    """One alias to find. ``group`` is the entity or keyword-set id it belongs to.

    ``kind`` lets the caller tell aliases from context words and exclusion
    phrases; ``clitics`` allows proclitic chains; ``suffixes`` lists the
    word endings allowed after the alias (empty: whole word only).
    """

    group: str
    alias: str
    kind: str = "alias"
    clitics: bool = True
    suffixes: frozenset[str] = frozenset()
    tag: int = 0


# A pattern found in a ``PreparedText``: ``(pattern, start, end)``, ``[start, end)`` in
# match-string coordinates. A plain tuple: building a NamedTuple per raw match costs ~4x.
Occurrence = tuple[Pattern, int, int]


class PreparedText:
    """One field's text in the forms the matcher needs; maps offsets back lazily."""

    __slots__ = ("original", "_normalized", "per_char", "match", "_runs", "_pieces", "_sentences", "_spaces")

    def __init__(self, original: str) -> None:
        self.original = original
        # One translate does normalization and separator folding at once; the
        # normalized text itself is only built when a hit needs it.
        self._normalized, self.per_char = normalize_with_path(original)
        spaced = fold(self._normalized)
        if "  " in spaced:
            self._runs: Any = [(m.start(), m.end()) for m in _MULTI_SPACE.finditer(spaced)]
            self.match = _MULTI_SPACE.sub(" ", spaced)
        else:
            self._runs = None
            self.match = spaced
        self._pieces: tuple[list[int], list[tuple[int, int, int, int]]] | None = None
        self._sentences: list[int] | None = None
        self._spaces: list[int] | None = None

    @property
    def normalized(self) -> str:
        return self._normalized

    # --- match string -> normalized text -------------------------------------------------
    def _to_normalized(self, p: int) -> int:
        runs = self._runs
        if not runs:
            return p
        if isinstance(runs, list):
            # -> (run starts in match-string coordinates, characters removed up to and including each run)
            starts, removed, total = [], [], 0
            for a, b in runs:
                starts.append(a - total)
                total += (b - a) - 1
                removed.append(total)
            runs = self._runs = (starts, removed)
        starts, removed = runs
        i = bisect_right(starts, p - 1) - 1  # runs that start strictly before p
        return p + removed[i] if i >= 0 else p

    # --- normalized text -> original -------------------------------------------------------
    def _build_pieces(self) -> tuple[list[int], list[tuple[int, int, int, int]]]:
        """Non-identity pieces (x_start, x_len, n_start, n_len) of the original->normalized map."""
        pieces: list[tuple[int, int, int, int]] = []
        x = self.original
        if self.per_char:
            shift = 0
            for m in _SPECIAL_RE.finditer(x):
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
        n_start = self._to_normalized(start)
        n_end = self._to_normalized(end - 1) + 1
        return self._x_start(n_start), self._x_end(n_end)

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
        n_start = self._to_normalized(start)
        n_end = self._to_normalized(end - 1) + 1
        text = self.normalized
        before = text[n_start - 1] if n_start > 0 else ""
        after = text[n_end] if n_end < len(text) else ""
        return before in _QUOTES and after in _QUOTES


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


_SPECIAL_RE = re.compile(_char_class(SPECIAL_CHARS))
_QUOTES = frozenset("\"'«»“”„‟‘’‹›")


class Matcher:
    """All patterns compiled into one Aho-Corasick automaton (immutable once built).

    An Arabic alias with the article (البوكمال) is stored once, without its
    alef (لبوكمال): the same key then finds البوكمال, وبالبوكمال (alef before
    it) and للبوكمال (ل + article with the alef elided), one raw match each.
    """

    def __init__(self, patterns: Iterable[Pattern]) -> None:
        self.patterns: list[Pattern] = list(patterns)
        keys: dict[str, list[tuple[Pattern, bool, frozenset[str]]]] = {}
        suffixable: set[str] = set()
        no_clitics: frozenset[str] = frozenset()
        for pat, form in zip(self.patterns, match_forms([p.alias for p in self.patterns]), strict=True):
            if not form:
                continue
            clitics = pat.clitics and _ARABIC_RE.search(form) is not None
            for variant in (spelling_variants(form) if _VARIANT_HINT_RE.search(form) else (form,)):
                if clitics and variant.startswith("ال") and len(variant) > 3:
                    key, entry = variant[1:], (pat, True, PROCLITICS)
                else:
                    key, entry = variant, (pat, False, _PROCLITICS_WITH_ARTICLE if clitics else no_clitics)
                entries = keys.get(key)
                if entries is None:
                    keys[key] = [entry]
                else:
                    entries.append(entry)
                if pat.suffixes:
                    suffixable.add(key)
        self._automaton = ahocorasick.Automaton()
        add = self._automaton.add_word
        for key, entries in keys.items():
            add(key, (len(key), key in suffixable, tuple(entries)))
        self.size = len(keys)
        if keys:
            self._automaton.make_automaton()

    def prepare(self, text: str) -> PreparedText:
        return PreparedText(text)

    def find(self, prepared: PreparedText) -> list[Occurrence]:
        """Every whole-word occurrence of every pattern in ``prepared``."""
        if not self.size:
            return []
        m = prepared.match
        size = len(m)
        at = m.startswith  # checks a position without creating a 1-char string
        out: list[Occurrence] = []
        append = out.append
        for end, (length, suffixable, entries) in self._automaton.iter(m):
            e = end + 1
            # right boundary first (most raw matches end inside a longer word)
            if e == size or at(" ", e) or not m[e].isalnum():
                we = e
                suffix = ""
            elif not suffixable:
                continue
            else:
                tail = _WORD_TAIL.match(m, e)
                we = tail.end() if tail else e
                suffix = m[e:we]
            s = e - length
            # left boundary: start of word, the alef of an article (البوكمال via لبوكمال),
            # or a proclitic chain
            if s == 0 or at(" ", s - 1):
                if not suffix:  # the common case: a whole word, nothing attached
                    for pat, lam, _allowed in entries:
                        if not lam:
                            append((pat, s, we))
                    continue
                ws = s
                prefix = ""
            elif at("ا", s - 1) and (s == 1 or at(" ", s - 2)):
                if not suffix:  # البوكمال found through its key لبوكمال
                    for pat, lam, _allowed in entries:
                        if lam:
                            append((pat, s - 1, we))
                    continue
                ws = s - 1
                prefix = "ا"
            elif not m[s - 1].isalnum():
                ws = s
                prefix = ""
            else:
                ws = s - 1
                while ws > 0 and m[ws - 1].isalnum() and s - ws <= _MAX_PREFIX + 1:
                    ws -= 1
                if ws > 0 and m[ws - 1].isalnum():
                    continue
                prefix = m[ws:s]
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
        return out
