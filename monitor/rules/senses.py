"""Sense decisions for ambiguous aliases: evidence from the context, summed into a score.

The same letters name other things: العمر is mostly "age", الميادين the TV
channel or "the squares", القائم "the one in charge", النمر "the tiger". One
neighbour word decides badly in both directions (a reporter of the channel *in*
Deir ez-Zor; a bare town name with no cue word next to it), so each occurrence
gets a score: the group's ``prior`` plus the weight of every evidence item
found *for* the entity, minus those found *against* it, and counts when the
score reaches the group's ``threshold``. What the evidence is (words before or
after it, vocabularies, other entities of the front in the sentence or the
document, shapes such as quotes or a hashtag) is written in the rule pack, so
an analyst can read and extend it (``monitor.rules.schema``); ``--explain`` in
``monitor rules test`` shows every decision with its evidence.

Context is read from the field's scan string (``PreparedText.scan``): words
are the runs between spaces, a sentence ends at . ! ? ؟ ؛ ; … in the match
string. Only the occurrences of ambiguous aliases pay for it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from monitor.rules.schema import Ambiguous, Evidence
from monitor.text.matcher import DEFAULT_SUFFIXES, PreparedText, match_form

__all__ = ["Cue", "Found", "SenseModel", "Verdict", "Context", "compile_sense"]

_STOP_RE = re.compile(r"[.!?؟؛;…]")
_LAST_STOP_RE = re.compile(r"(?s).*[.!?؟؛;…]")
# Proclitic chains a context word may carry, as the matcher allows them before a name (longest
# first): conjunction, preposition, article; لل is ل + the article.
_CLITIC_SET = frozenset(c + p + a for c in ("", "و", "ف") for p in ("", "ب", "ل", "ك") for a in ("", "ال")
                         if (c + p + a) and not (p == "ل" and a))
_MAX_CLITIC = max(map(len, _CLITIC_SET))
_SUFFIXES = DEFAULT_SUFFIXES
_MAX_SUFFIX = max(len(s) for s in _SUFFIXES)
_PREPOSITION_CLITICS = ("ب", "ل", "ك")
_FEMININE_ENDINGS = ("ه", "ات")
_REACH = 400  # characters looked at on each side for the sentence bounds


@dataclass(frozen=True, slots=True)
class Cue:
    """One compiled evidence item: what to find, where, and its signed weight."""

    label: str
    weight: float
    where: str
    within: int
    words: frozenset[str]
    stems: tuple[str, ...]
    phrases: tuple[tuple[str, ...], ...]
    terms: frozenset[str]
    shape: str | None
    clitic: str | None = None
    longest: int = 1  # words in the longest phrase


@dataclass(frozen=True, slots=True)
class Found:
    """Evidence that was there: its label, signed weight and what was found."""

    label: str
    weight: float
    found: str


@dataclass(frozen=True, slots=True)
class Verdict:
    counted: bool
    score: float
    threshold: float
    evidence: tuple[Found, ...]


@dataclass(frozen=True, slots=True)
class SenseModel:
    """The compiled ``ambiguous`` group of an entity."""

    entity: str
    prior: float
    threshold: float
    cues: tuple[Cue, ...]

    def decide(self, ctx: Context) -> Verdict:
        score = self.prior
        found: list[Found] = []
        for cue in self.cues:
            what = ctx.find(cue)
            if what is not None:
                score += cue.weight
                found.append(Found(cue.label, cue.weight, what))
        return Verdict(score >= self.threshold, score, self.threshold, tuple(found))


def _label(evidence: Evidence) -> str:
    if evidence.name:
        return evidence.name
    what: str
    if evidence.shape:
        what = evidence.shape
    elif evidence.vocabulary:
        what = "+".join(evidence.vocabulary)
    elif evidence.terms:
        what = "+".join(evidence.terms)
    elif evidence.words:
        what = ",".join(evidence.words[:3]) + ("…" if len(evidence.words) > 3 else "")
    else:
        return f"{evidence.clitic}- on the name"
    span = evidence.span
    label = f"{what} {evidence.where}" + (f" {span}" if span else "")
    return label + (f" with {evidence.clitic}- on the name" if evidence.clitic else "")


def _cue(evidence: Evidence, sign: float, vocabularies: Mapping[str, Sequence[str]]) -> Cue:
    words: set[str] = set()
    stems: set[str] = set()
    phrases: set[tuple[str, ...]] = set()
    raw = list(evidence.words) + [w for v in evidence.vocabulary for w in vocabularies[v]]
    for text in raw:
        text = text.strip()
        stem = text.endswith("*")
        form = match_form(text.rstrip("*"))
        if not form:
            continue
        parts = tuple(form.split(" "))
        if len(parts) > 1:
            phrases.add(parts)
        elif stem:
            stems.add(form)
        else:
            words.add(form)
    clitic = match_form(evidence.clitic) if evidence.clitic else None
    return Cue(_label(evidence), sign * evidence.weight, evidence.where, evidence.span, frozenset(words),
               tuple(sorted(stems)), tuple(sorted(phrases)), frozenset(evidence.terms), evidence.shape, clitic,
               max((len(p) for p in phrases), default=1))


def compile_sense(entity: str, group: Ambiguous, vocabularies: Mapping[str, Sequence[str]]) -> SenseModel:
    cues = [_cue(e, 1.0, vocabularies) for e in group.evidence_for()]
    cues += [_cue(e, -1.0, vocabularies) for e in group.against]
    return SenseModel(entity, group.prior, group.threshold, tuple(cues))


@functools.lru_cache(maxsize=16384)
def _bases(token: str) -> tuple[str, ...]:
    """The token and what it may be without a proclitic chain or the article (وبالمدينة -> بالمدينة ...
    المدينة, مدينة; للمدينة -> المدينة)."""
    out = [token]
    for n in range(min(_MAX_CLITIC, len(token) - 2), 0, -1):
        if token[:n] in _CLITIC_SET:
            out.append(token[n:])
    for chain in ("لل", "ولل", "فلل"):
        if token.startswith(chain) and len(token) - len(chain) >= 2:
            out += ("ال" + token[len(chain):], token[len(chain):])
    return tuple(out)


@functools.lru_cache(maxsize=16384)
def _forms(token: str) -> frozenset[str]:
    """Every word ``token`` may be an inflected form of: its bases (``_bases``), each also without
    one of the usual suffixes (مدينتها -> مدينة + ها: ة is written ت before a suffix)."""
    out = set()
    for base in _bases(token):
        out.add(base)
        for cut in range(1, min(_MAX_SUFFIX, len(base) - 2) + 1):
            if base[-cut:] in _SUFFIXES:
                stem = base[:-cut]
                out.add(stem)
                if stem.endswith("ت"):
                    out.add(stem[:-1] + "ه")
    return frozenset(out)


def _word_matches(cue: Cue, token: str) -> bool:
    if not cue.words.isdisjoint(_forms(token)):
        return True
    return bool(cue.stems) and any(base.startswith(cue.stems) for base in _bases(token))


def _find_words(cue: Cue, nearest_first: Sequence[str], runs: Sequence[Sequence[str]]) -> str | None:
    """The first word of ``cue`` among ``nearest_first``, or its first phrase in one of ``runs``
    (words in reading order)."""
    if cue.words or cue.stems:
        for token in nearest_first:
            if _word_matches(cue, token):
                return token
    for phrase in cue.phrases:
        n = len(phrase)
        for tokens in runs:
            for i in range(len(tokens) - n + 1):
                if all(part in _bases(tokens[i + j]) for j, part in enumerate(phrase)):
                    return " ".join(tokens[i:i + n])
    return None


def _tail(words: list[str], n: int) -> list[str]:
    return words[len(words) - n:] if n < len(words) else words


class Context:
    """What evidence may look at around one occurrence (computed on first use)."""

    __slots__ = ("prepared", "start", "end", "form", "entity", "document", "_sentence", "_before", "_after")

    def __init__(self, prepared: PreparedText, start: int, end: int, form: str, entity: str,
                 document: DocumentView) -> None:
        self.prepared, self.start, self.end, self.form = prepared, start, end, form
        self.entity, self.document = entity, document
        self._sentence: tuple[int, int] | None = None
        self._before: list[str] | None = None
        self._after: list[str] | None = None

    def sentence(self) -> tuple[int, int]:
        """Match-string bounds of the sentence around the occurrence."""
        if self._sentence is None:
            m = self.prepared.match
            lo = max(0, self.start - _REACH)
            last = _LAST_STOP_RE.match(m, lo, self.start)
            begin = last.end() if last is not None else lo
            nxt = _STOP_RE.search(m, self.end, self.end + _REACH)
            self._sentence = (begin, nxt.start() if nxt is not None else min(len(m), self.end + _REACH))
        return self._sentence

    def before(self) -> list[str]:
        """The words of the sentence before the occurrence, in reading order."""
        if self._before is None:
            scan = self.prepared.scan()[0]
            self._before = scan[self.sentence()[0]:self.start].split()
        return self._before

    def after(self) -> list[str]:
        if self._after is None:
            scan = self.prepared.scan()[0]
            self._after = scan[self.end:self.sentence()[1]].split()
        return self._after

    def prefix(self) -> str:
        """The preposition glued to the front of the occurrence, if any (conjunctions dropped)."""
        token = self.prepared.scan()[0][self.start:self.end]
        form = self.form
        if token.endswith(form):
            chain = token[:-len(form)]
        elif form.startswith("ال") and token.endswith(form[1:]):
            chain = token[:-(len(form) - 1)]  # للميادين: ل + the article's lam
        else:
            return ""
        chain = chain.lstrip("وف") if len(chain) > 1 else chain
        return chain if chain not in ("", "و", "ف") else ""

    def find(self, cue: Cue) -> str | None:
        """What of ``cue`` is in its scope here, or None."""
        if cue.clitic is not None and self.prefix() != cue.clitic:
            return None
        if cue.shape is not None:
            return self._shape(cue.shape)
        found: str | None = None
        if cue.words or cue.stems or cue.phrases:
            found = _find_words(cue, *self._scope(cue))
        if found is None and cue.terms:
            found = self._find_terms(cue)
        if found is None and cue.clitic is not None and not (cue.words or cue.stems or cue.phrases or cue.terms):
            found = cue.clitic + "-"
        return found

    def _scope(self, cue: Cue) -> tuple[list[str], list[list[str]]]:
        """The words ``cue`` looks at, nearest first (a preposition written on the name, as in
        بالميادين or فيالميادين, is the nearest word before it), and the runs its phrases may sit in."""
        where, n, longer = cue.where, cue.within, cue.longest - 1
        if where == "document":
            words = self.document.words()
            return words, [words]
        prefix = self.prefix()
        lead = [prefix] if prefix else []
        before, after = self.before(), self.after()
        if where == "before":
            return lead + _tail(before, n)[::-1], [_tail(before, n + longer)]
        if where == "after":
            return after[:n], [after[:n + longer]]
        if where == "around":
            return lead + _tail(before, n)[::-1] + after[:n], [_tail(before, n + longer), after[:n + longer]]
        return lead + before[::-1] + after, [before, after]

    def _find_terms(self, cue: Cue) -> str | None:
        if cue.where == "document":
            for term in cue.terms:
                if term in self.document.present:
                    return term
            return None
        scan = self.prepared.scan()[0]
        begin, end = self.sentence()
        for term in cue.terms:
            for start, stop in self.document.positions(self.prepared, term):
                if start < begin or stop > end or (start < self.end and self.start < stop):
                    continue
                if cue.where == "sentence":
                    return term
                if stop <= self.start:
                    words = len(scan[start:self.start].split())
                    if cue.where in ("before", "around") and words <= cue.within:
                        return term
                elif cue.where in ("after", "around") and len(scan[self.end:start].split()) < cue.within:
                    return term
        return None

    def _shape(self, shape: str) -> str | None:
        prepared = self.prepared
        if shape == "quoted":
            return "quotes" if prepared.is_quoted(self.start, self.end) else None
        if shape == "exclusion_in_document":
            return self.document.excluded_phrase(self.entity)
        if shape == "hashtag":
            n_start = prepared.to_normalized(self.start)
            return "#" if n_start > 0 and prepared.normalized[n_start - 1] in "#＃" else None
        if shape == "after_definite_masculine":
            m = prepared.match
            # the word right before, with nothing but a space between, and nothing on the name itself
            # (والقائم after البوكمال is a second name, not an adjective)
            if (self.start < 2 or m[self.start - 1] != " " or not m[self.start - 2].isalnum()
                    or prepared.scan()[0][self.start:self.end] != self.form):
                return None
            before = self.before()
            if not before:
                return None
            word = before[-1]
            for base in _bases(word):
                if base.startswith("ال") and len(base) >= 5 and not base.endswith(_FEMININE_ENDINGS):
                    return word
            return None
        raise ValueError(f"unknown shape {shape!r}")  # pragma: no cover - the schema lists the shapes


class DocumentView:
    """What the evidence of one evaluation may know about the whole document."""

    __slots__ = ("present", "_positions", "_excluded", "_words", "_fields")

    def __init__(self, present: set[str], positions: Callable[[PreparedText, str], list[tuple[int, int]]],
                 excluded: Mapping[str, str], fields: Iterable[PreparedText]) -> None:
        self.present = present
        self._positions = positions
        self._excluded = excluded
        self._fields = list(fields)
        self._words: list[str] | None = None

    def positions(self, prepared: PreparedText, term: str) -> list[tuple[int, int]]:
        """Match-string spans of the unambiguous mentions of ``term`` in the field ``prepared``."""
        return self._positions(prepared, term)

    def excluded_phrase(self, entity: str) -> str | None:
        """An exclusion phrase of ``entity`` found in the document (the other sense is about)."""
        return self._excluded.get(entity)

    def words(self) -> list[str]:
        if self._words is None:
            self._words = [w for p in self._fields for w in p.scan()[0].split()]
        return self._words
