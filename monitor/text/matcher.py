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

Offsets of a hit point into the ORIGINAL text: they are mapped back through
the whitespace collapse and the normalization (deletions, ligature
expansions) only for texts that have hits.
"""

from __future__ import annotations

import gc
import re
import unicodedata
from bisect import bisect_right
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import product, repeat
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
# Every separator and every whitespace character except the plain space (already a space:
# replacing the ~500 spaces of an article with themselves cost 3/4 of fold's time).
# All whitespace is in the BMP (tests/test_match.py checks all of Unicode): a Python loop
# over all 1.1M code points cost 0.9 s at every import (CLI, each worker), this 10 ms.
_WHITESPACE = "".join(re.findall(r"[^\S ]", "".join(map(chr, range(0x10000)))))
_SEP_RE = re.compile("[" + re.escape(_SEPARATORS + _WHITESPACE) + "]")
_MULTI_SPACE = re.compile("  +")
_SPACE_RE = re.compile(" ")
_SENTENCE_END = re.compile(r"[.!?؟؛;:،,…]")
_WORD_TAIL = re.compile(r"[^\W_]+")
_NON_WORD_RE = re.compile(r"[^\w ]")  # one char in, one space out; [^\W_] is exactly str.isalnum
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
        return [_NON_WORD_KEY_RE.sub(" ", k).replace("_", " ") for k in keys]
    return out


# and "_" (a str.replace after it: one character class alone scans twice as fast as "[...]|_")
_NON_WORD_KEY_RE = re.compile(r"[^\w \x00]")


_ARABIC_RE = re.compile("[\u0600-\u06ff]")


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



def spelling_variants(form: str) -> set[str]:
    """Spacing variants real news uses: دير الزور / ديرالزور, البو كمال / البوكمال."""
    if _VARIANT_HINT_RE.search(form) is None:
        return {form}
    return _variants(form)


def _variants(form: str) -> set[str]:
    tokens = form.split(" ")
    out = {form}
    # split a fused kunya/abd prefix: البوكمال -> البو كمال
    split = False
    if "بو" in form or "عبد" in form:  # in البو and ابو
        split_tokens: list[str] = []
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
            for g, sep in zip(gaps, choice):
                seps[g] = sep
            out.add("".join([t + sep for t, sep in zip(toks, seps)]))
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

    __slots__ = ("original", "_normalized", "per_char", "match", "_runs", "_pieces", "_sentences", "_spaces",
                 "_scan")

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
        self._scan: tuple[str, bytes] | None = None

    def scan(self) -> tuple[str, bytes]:
        """The scan string (every non-alphanumeric character a space, one space appended; same
        offsets as ``match``) and its ASCII image (``b[i] == 32`` iff a word boundary at ``i``, 1 for alef;
        ``b[-1]`` is the appended space, so index -1 reads as "start of text")."""
        sc = self._scan
        if sc is None:
            s = _NON_WORD_RE.sub(" ", self.match)
            if "_" in s:  # pragma: no cover - fold() already made underscores spaces
                s = s.replace("_", " ")
            s += " "
            # alef -> byte 1 (the article's alef before a key stored without it), other non-ASCII -> "?"
            sc = self._scan = (s, s.replace("ا", "\x01").encode("ascii", "replace"))
        return sc

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
            for a, b in zip(starts, starts[1:]):
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

    The automaton runs over a *scan string* (``PreparedText.scan``): the match
    string with every non-alphanumeric character turned into a space, plus one
    trailing space. Every key is stored with a trailing space, so a raw match
    already has a word boundary on its right and the C scan drops the matches
    that end inside a longer word (most of them). Keys that may carry a suffix
    are stored a second time without the space, for the suffixed forms only.
    Keys holding a space or punctuation are checked against the match string
    (``دير الزور`` must not match ``دير.الزور``). Per raw match, the common
    case is one byte lookup (start of word) and a tuple append.
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
        pwa, pro, none = _PROCLITICS_WITH_ARTICLE, PROCLITICS, frozenset()
        ok_pwa = _NO_PREFIX | pwa
        # key -> its automaton value, built once; keys shared by several patterns are rebuilt
        # from their entry lists after the loop (``shared``); keys stored under another scan
        # key or with a suffix copy are added last (``special``: key -> scan-string key).
        values: dict[str, tuple] = {}
        shared: dict[str, list[tuple]] = {}
        special: dict[str, str] = {}
        suffixable: set[str] = set()
        late = False  # a key became special after other keys were added: ``special`` is out of order
        get = values.get
        for pat, form, sform in zip(pats, forms, scans):
            if not form:
                continue
            c0 = form[0]
            clitics = pat.clitics and (
                "\u0600" <= c0 <= "\u06ff" or (not form.isascii() and _ARABIC_RE.search(form) is not None))
            suffixed = bool(pat.suffixes)
            if form not in hinted:  # nearly all forms: one key, its scan form already known
                if clitics and c0 == "ا" and form.startswith("ال") and len(form) > 3:
                    keyed: Iterable[tuple[str, tuple, str]] = ((form[1:], (pat, True, pro), sform[1:]),)
                else:
                    keyed = ((form, (pat, False, pwa if clitics else none), sform),)
            else:
                punct = sform != form
                keyed = []
                for variant in _variants(form):
                    if clitics and variant.startswith("ال") and len(variant) > 3:
                        key, entry = variant[1:], (pat, True, pro)
                    else:
                        key, entry = variant, (pat, False, pwa if clitics else none)
                    skey = _NON_WORD_KEY_RE.sub(" ", key).replace("_", " ") if punct else key
                    keyed.append((key, entry, skey))
            for key, entry, skey in keyed:
                old = get(key)
                if old is None:
                    verify = _VERIFY if (skey != key or " " in key) else 0
                    if entry[1]:
                        values[key] = (len(key), verify, (), (pat,), (entry,), key, _LAM_OK)
                    else:
                        values[key] = (len(key), verify, (pat,), (), (entry,), key,
                                       ok_pwa if clitics else _NO_PREFIX)
                    if suffixed or skey != key:
                        special[key] = skey
                        if suffixed:
                            suffixable.add(key)
                    continue
                lst = shared.get(key)
                if lst is None:
                    shared[key] = [old[4][0], entry]
                else:
                    lst.append(entry)
                if suffixed:
                    suffixable.add(key)
                    if key not in special:
                        special[key] = key  # no punctuation (else it would be there already)
                        late = True
        for key, entries in shared.items():
            plain = tuple(e[0] for e in entries if not e[1])
            lamp = tuple(e[0] for e in entries if e[1])
            old = values[key]
            values[key] = (old[0], old[1], plain, lamp, tuple(entries), key, None)
        automaton = ahocorasick.Automaton()
        add = automaton.add_word
        regular = {k: v for k, v in values.items() if k not in special} if special else values
        # every key with its trailing space, the loop in C
        deque(map(add, map(str.__add__, regular, repeat(" ")), regular.values()), maxlen=0)
        if special:
            later: list[tuple[str, tuple]] = []
            for key in ([k for k in values if k in special] if late else special):
                skey = special[key]
                value = values[key]
                later.append((skey + " ", value))
                if key in suffixable:
                    later.append((skey, (value[0] - 1, value[1] | _SUFFIXED) + value[2:]))
            # Keys with punctuation and the suffix copies may look like another key in the scan
            # string (U.S. / u s, "X." bare / "X" + space): such values are merged, both checked.
            aget = automaton.get
            for s_key, v in later:
                other = aget(s_key, None)
                if other is not None:
                    subs = other[4] if other[1] & _MULTI else (other,)
                    v = (0, _MULTI, (), (), subs + (v,), "", None)
                add(s_key, v)
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
        s, b = prepared.scan()
        startswith = m.startswith
        out: list[Occurrence] = []
        append = out.append
        for end, value in self._automaton.iter(s):
            back, kind, plain, lamp, entries, key, ok = value
            st = end - back
            if kind:
                if kind != _VERIFY:  # suffixes, look-alike keys: the general path
                    if kind & _MULTI:
                        for sub in entries:
                            _find_one(append, m, s, b, end, sub)
                    else:
                        _find_one(append, m, s, b, end, value)
                    continue
                if not startswith(key, st):  # a space in the key, "." in the text
                    continue
            c = b[st - 1]
            if c == 32:  # whole word (b[-1] is the appended space: start of text)
                for pat in plain:
                    append((pat, st, end))
                continue
            if c == 1 and lamp and b[st - 2] == 32:  # البوكمال found through its key لبوكمال
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


def _find_one(append, m: str, s: str, b: bytes, end: int, value: tuple) -> None:
    """``Matcher.find`` for one raw match of any kind (the loop inlines the common kind 0)."""
    back, kind, plain, lamp, entries, key, _ok = value
    st = end - back
    if kind & _VERIFY and not m.startswith(key, st):
        return
    if kind & _SUFFIXED:
        e = end + 1
        if b[e] == 32:  # no suffix: the copy with the trailing space reports it
            return
        we = _WORD_TAIL.match(s, e).end()  # type: ignore[union-attr]  # s[e] is alphanumeric
        suffix = s[e:we]
    else:
        e = we = end
        suffix = ""
        if b[st - 1] == 32:
            for pat in plain:
                append((pat, st, e))
            return
        if b[st - 1] == 1 and lamp and b[st - 2] == 32:
            for pat in lamp:
                append((pat, st - 1, e))
            return
    ws = _word_start(s, st)
    if ws >= 0:
        _add_general(append, entries, s[ws:st], suffix, ws, we)


_VERIFY = 1
_SUFFIXED = 2
_MULTI = 4
# What a single-pattern key accepts before it (the rules of ``_add_general`` as sets).
_NO_PREFIX: frozenset[str] = frozenset({""})
_LAM_OK: frozenset[str] = frozenset({"ا"} | {p + "ا" for p in PROCLITICS}) | _LAM_PREFIXES


def _word_start(s: str, st: int) -> int:
    """Start of the word that ends in a proclitic chain before ``st``; -1 if it is too long."""
    lo = st - _MAX_PREFIX - 1
    sp = s.rfind(" ", lo if lo > 0 else 0, st)
    if sp >= 0:
        return sp + 1
    return -1 if lo > 0 else 0


def _add_general(append, entries, prefix: str, suffix: str, ws: int, we: int) -> None:
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
