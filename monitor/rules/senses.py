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
string (and reaches at most ``SENTENCE_WORDS`` words on each side). Only the
occurrences of ambiguous aliases pay for it, and little: every evidence item
of a group has one bit, the group's ``SenseIndex`` maps each word form to the bits of
the items that list it, and a word's bits are computed once and kept (news
repeats its vocabulary), so an item is found with an OR and an AND.

Words are compared as surface forms with the clitics, the article and the
usual endings taken off (``_forms``), not as lemmas: camel-tools' morphological
analyzer would give lemmas and parts of speech, but it needs its data package
(``camel_data``), which cannot be downloaded here (and would cost far more per
word than this budget allows); camel-tools' utilities serve as the oracle of
``monitor.text.normalize`` and ``tokenize`` in the tests instead.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import accumulate
from operator import or_
from typing import NamedTuple

from monitor.rules.schema import Ambiguous, Condition, ContextKind, Evidence
from monitor.text.matcher import DEFAULT_SUFFIXES, PreparedText, match_form

__all__ = ["Cue", "Found", "SenseModel", "SenseIndex", "Verdict", "Context", "DocumentView", "compile_sense",
           "SENTENCE_WORDS"]

_STOP_RE = re.compile(r"[.!?؟؛;…]")
_LAST_STOP_RE = re.compile(r"(?s).*[.!?؟؛;…]")
# Proclitic chains a context word may carry, as the matcher allows them before a name:
# conjunction, preposition, article; لل is ل + the article.
_CLITIC_SET = frozenset(c + p + a for c in ("", "و", "ف") for p in ("", "ب", "ل", "ك") for a in ("", "ال")
                        if (c + p + a) and not (p == "ل" and a))
_MAX_CLITIC = max(map(len, _CLITIC_SET))
_SUFFIXES = DEFAULT_SUFFIXES
_MAX_SUFFIX = max(len(s) for s in _SUFFIXES)
_FEMININE_ENDINGS = ("ه", "ات")
_REACH = 100  # characters looked at on each side for the sentence (~15 words)
#: The most words a ``sentence`` scope reaches on each side of the name.
SENTENCE_WORDS = 12
_CACHE_LIMIT = 20_000  # words whose bits a SenseIndex keeps (then it starts over)


@dataclass(frozen=True, slots=True)
class Cue:
    """One compiled evidence item: what to find, where, and its signed weight.

    ``bit`` is the item's bit in its group's ``SenseIndex`` (0: it lists no single words), ``phrase_bit``
    the bit of the first words of its phrases.
    """

    label: str
    weight: float
    where: str
    within: int
    words: frozenset[str]
    stems: tuple[str, ...]
    phrases: tuple[tuple[str, ...], ...]
    terms: tuple[str, ...]  # in the order the pack lists them: explain names the first found
    shape: str | None
    clitic: str | None = None
    longest: int = 1  # words in the longest phrase
    bit: int = 0
    phrase_bit: int = 0  # the bit of the first words of its phrases (a phrase is only looked for then)

    bits: int = 0  # bit | phrase_bit
    words_only: bool = False  # found only through words of the sentence (skipped when none is there)
    requires: Cue | None = None  # a second condition that must hold too (``Evidence.requires``)
    doc_key: str = ""  # ``document`` scope, words only: the matcher finds them (``DocumentView.context``)


@dataclass(frozen=True, slots=True)
class Found:
    """Evidence that was there: its label, signed weight and what was found."""

    label: str
    weight: float
    found: str


class Verdict(NamedTuple):
    counted: bool
    score: float
    threshold: float
    evidence: tuple[Found, ...]


class SenseModel:
    """The compiled ``ambiguous`` group of an entity.

    Items found through words alone (most) are checked in one tight loop of bit tests; the
    others (terms, shapes, clitics, phrases) through ``Context.find``.
    """

    __slots__ = ("entity", "prior", "threshold", "cues", "index", "watches", "_fast", "_slow", "_slow_up",
                 "_slow_down")

    def __init__(self, entity: str, prior: float, threshold: float, cues: tuple[Cue, ...],
                 index: SenseIndex) -> None:
        self.entity, self.prior, self.threshold, self.cues, self.index = entity, prior, threshold, cues, index
        # the entities whose presence in the document may change a verdict (the second pass)
        self.watches = frozenset(t for c in cues for t in c.terms) | (
            {entity} if any(c.shape == "entity_in_document" for c in cues) else frozenset())
        fast: list[tuple[int, int, int, float]] = []
        slow: list[Cue] = []
        for cue in cues:
            if (cue.bit and not (cue.phrases or cue.terms or cue.shape or cue.clitic or cue.requires)
                    and cue.where != "document"):
                n = cue.within if cue.where != "sentence" else SENTENCE_WORDS
                fast.append((cue.bit, n if cue.where != "after" else 0, n if cue.where != "before" else 0,
                             cue.weight))
            else:
                slow.append(cue)
        self._fast = tuple(fast)
        slow.sort(key=_cost)
        # the other items, with what they could still add or take away from there on (so the loop
        # stops as soon as the verdict cannot change: most shapes and terms are never looked at)
        self._slow = tuple((cue, sum(c.weight for c in slow[k + 1:] if c.weight > 0),
                            sum(c.weight for c in slow[k + 1:] if c.weight < 0)) for k, cue in enumerate(slow))
        self._slow_up = sum(c.weight for c in slow if c.weight > 0)
        self._slow_down = sum(c.weight for c in slow if c.weight < 0)

    def decide(self, ctx: Context, explain: bool = True) -> Verdict:
        """The verdict on ``ctx``. With ``explain`` every item is looked at and listed; without, the
        score stops being computed once the verdict is settled (the score is then partial)."""
        score = self.prior
        if explain:
            found: list[Found] = []
            present = ctx.sentence_bits()  # an item none of whose words is in the sentence is skipped
            for cue in self.cues:
                if cue.words_only and not present & cue.bits:
                    continue
                what = ctx.find(cue, explain)
                if what is not None:
                    score += cue.weight
                    found.append(Found(cue.label, cue.weight, what))
            return Verdict(score >= self.threshold, score, self.threshold, tuple(found))
        _, running, _, running_after = ctx._masks()
        before, after = len(running), len(running_after)
        present = (running[-1] if before else 0) | (running_after[-1] if after else 0)
        glued = 1 if ctx._prefix else 0
        for bit, n_before, n_after, weight in self._fast:
            if not present & bit:
                continue
            if n_before and before and running[min(before, n_before + glued) - 1] & bit:
                score += weight
            elif n_after and after and running_after[min(after, n_after) - 1] & bit:
                score += weight
        threshold = self.threshold
        if score + self._slow_down >= threshold or score + self._slow_up < threshold:
            return Verdict(score >= threshold, score, threshold, ())  # the verdict is settled
        for cue, up, down in self._slow:
            if (not cue.words_only or present & cue.bits) and ctx.find(cue, False) is not None:
                score += cue.weight
            if score + down >= threshold or score + up < threshold:
                break
        return Verdict(score >= threshold, score, threshold, ())


def _cost(cue: Cue) -> int:
    """How dear an item is to look for (the fast path stops before the dear ones when it can)."""
    if cue.shape is not None:
        return 3 if cue.shape in ("quoted", "hashtag") else 2  # those map an offset to the normalized text
    if cue.terms:
        return 0 if cue.where == "document" else 1
    return 1


class SenseIndex:
    """Word form -> the bits of the evidence items of one group that list it.

    ``mask(word)`` is what a word of the text contributes: the bits of every item one of its
    forms (``_forms``: without proclitics, article or the usual endings) or one of its stems
    (``stem*`` items) belongs to. Masks are kept per word, bounded; thread-safe (a lost race
    computes a mask twice).
    """

    __slots__ = ("_words", "_stems", "_stem_lengths", "_cache")

    def __init__(self, cues: Iterable[Cue]) -> None:
        self._words: dict[str, int] = {}
        self._stems: dict[str, int] = {}
        for cue in cues:
            for word in cue.words:
                self._words[word] = self._words.get(word, 0) | cue.bit
            for stem in cue.stems:
                self._stems[stem] = self._stems.get(stem, 0) | cue.bit
            for phrase in cue.phrases:
                self._words[phrase[0]] = self._words.get(phrase[0], 0) | cue.phrase_bit
        self._stem_lengths = tuple(sorted({len(s) for s in self._stems}))
        self._cache: dict[str, int] = {}

    def masks(self, words: list[str]) -> list[int]:
        """``mask`` of each word (the known ones in one C-level pass)."""
        out = list(map(self._cache.get, words))
        if None in out:
            out = [m if m is not None else self.mask(w) for w, m in zip(words, out, strict=True)]
        return out  # type: ignore[return-value]  # no None left

    def running(self, words: list[str]) -> list[int]:
        """The running OR of the words' masks (``running[k]``: the bits of ``words[:k + 1]``), the
        known words looked up in one C-level pass."""
        try:
            return list(accumulate(map(self._cache.__getitem__, words), or_))
        except KeyError:
            return list(accumulate(self.masks(words), or_))

    def mask(self, word: str) -> int:
        m = self._cache.get(word)
        if m is None:
            m = 0
            get = self._words.get
            for form in _forms(word):
                m |= get(form, 0)
            if self._stems:
                stems = self._stems.get
                for base in _bases(word):
                    for n in self._stem_lengths:
                        if n > len(base):
                            break
                        m |= stems(base[:n], 0)
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache = {}
            self._cache[word] = m
        return m

    def __getstate__(self) -> tuple[dict[str, int], dict[str, int], tuple[int, ...]]:
        return self._words, self._stems, self._stem_lengths  # not the cache: workers build their own

    def __setstate__(self, state: tuple[dict[str, int], dict[str, int], tuple[int, ...]]) -> None:
        self._words, self._stems, self._stem_lengths = state
        self._cache = {}


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
    if evidence.requires is not None:
        r = evidence.requires
        need = "+".join(r.vocabulary) if r.vocabulary else ",".join(r.words[:3]) + ("…" if len(r.words) > 3 else "")
        label += f" and {need} {r.where}" + (f" {r.span}" if r.span else "")
    return label + (f" with {evidence.clitic}- on the name" if evidence.clitic else "")


def _cue(evidence: Evidence | Condition, sign: float, vocabularies: Mapping[str, Sequence[str]],
         prefix: str = "") -> Cue:
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
    longest = max((len(p) for p in phrases), default=1)
    if isinstance(evidence, Condition):
        return Cue("requires", 0.0, evidence.where, evidence.span, frozenset(words), tuple(sorted(stems)),
                   tuple(sorted(phrases)), (), None, None, longest)
    clitic = match_form(evidence.clitic) if evidence.clitic else None
    requires = _cue(evidence.requires, 0.0, vocabularies) if evidence.requires is not None else None
    return Cue(prefix + _label(evidence), sign * evidence.weight, evidence.where, evidence.span, frozenset(words),
               tuple(sorted(stems)), tuple(sorted(phrases)), tuple(dict.fromkeys(evidence.terms)), evidence.shape,
               clitic, longest, requires=requires)


def compile_sense(entity: str, group: Ambiguous, vocabularies: Mapping[str, Sequence[str]],
                  kinds: Mapping[str, ContextKind] | None = None, tag: int = 0) -> SenseModel:
    """The model of one ``ambiguous`` group of ``entity``: its own evidence, then that of the
    ``kinds`` it names (labelled ``kind: ...``). Its items get small bits of their own (two each:
    words, and the first words of phrases; a requirement two more), so masks stay machine-sized
    integers. An item that looks for single words in the whole document gets a ``doc_key``: the
    caller has the matcher find those words in its one scan (``Pattern`` group ``doc_key``, role
    ``CONTEXT``), and ``DocumentView.context`` tells which keys were found."""
    cues = [_cue(e, 1.0, vocabularies) for e in group.evidence_for()]
    cues += [_cue(e, -1.0, vocabularies) for e in group.against]
    for name in group.kinds:
        kind = (kinds or {})[name]
        cues += [_cue(e, 1.0, vocabularies, f"{name}: ") for e in kind.for_]
        cues += [_cue(e, -1.0, vocabularies, f"{name}: ") for e in kind.against]
    counter = iter(range(0, 1 << 16, 2))

    def number(cue: Cue) -> Cue:
        i = next(counter)
        if cue.words or cue.stems:
            cue = replace(cue, bit=1 << i)
        if cue.phrases:
            cue = replace(cue, phrase_bit=1 << (i + 1))
        bits = cue.bit | cue.phrase_bit
        requires = number(cue.requires) if cue.requires is not None else None
        doc_key = f"\x00{tag}:{i}" if cue.where == "document" and cue.words and not (cue.stems or cue.phrases) else ""
        return replace(cue, bits=bits, words_only=bool(bits) and not cue.terms and cue.where != "document",
                       requires=requires, doc_key=doc_key)

    numbered = [number(cue) for cue in cues]
    indexed = numbered + [c.requires for c in numbered if c.requires is not None]
    return SenseModel(entity, group.prior, group.threshold, tuple(numbered),
                      SenseIndex(c for c in indexed if c.bit or c.phrase_bit))


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


def _find_phrase(cue: Cue, runs: Sequence[Sequence[str]]) -> str | None:
    """The first phrase of ``cue`` in one of ``runs`` (words in reading order)."""
    for phrase in cue.phrases:
        n, first = len(phrase), phrase[0]
        for tokens in runs:
            for i in range(len(tokens) - n + 1):
                if first in _bases(tokens[i]) and all(
                        part in _bases(tokens[i + j]) for j, part in enumerate(phrase[1:], 1)):
                    return " ".join(tokens[i:i + n])
    return None


def _tail(words: list[str], n: int) -> list[str]:
    return words[len(words) - n:] if n < len(words) else words


class Context:
    """What evidence may look at around one occurrence (computed on first use)."""

    __slots__ = ("prepared", "start", "end", "form", "entity", "document", "index", "_sentence", "_before",
                 "_after", "_prefix", "_near")

    def __init__(self, prepared: PreparedText, start: int, end: int, form: str, entity: str,
                 document: DocumentView, index: SenseIndex) -> None:
        self.prepared, self.start, self.end, self.form = prepared, start, end, form
        self.entity, self.document, self.index = entity, document, index
        self._sentence: tuple[int, int] | None = None
        self._before: list[str] | None = None
        self._after: list[str] | None = None
        self._prefix: str | None = None
        # (nearest-first words before, with the glued preposition first; their running OR of masks;
        #  nearest-first words after; their running OR)
        self._near: tuple[list[str], list[int], list[str], list[int]] | None = None

    def sentence(self) -> tuple[int, int]:
        """Match-string bounds of the sentence around the occurrence."""
        if self._sentence is None:
            m = self.prepared.match
            lo = max(0, self.start - _REACH)
            last = _LAST_STOP_RE.match(m, lo, self.start)  # the last sentence end before, if any
            nxt = _STOP_RE.search(m, self.end, self.end + _REACH)
            self._sentence = (last.end() if last is not None else lo,
                              nxt.start() if nxt is not None else min(len(m), self.end + _REACH))
        return self._sentence

    def before(self) -> list[str]:
        """The words of the sentence before the occurrence, in reading order."""
        if self._before is None:
            scan = self.prepared.scan()
            self._before = _tail(scan[self.sentence()[0]:self.start].split(), SENTENCE_WORDS)
        return self._before

    def after(self) -> list[str]:
        if self._after is None:
            scan = self.prepared.scan()
            self._after = scan[self.end:self.sentence()[1]].split()[:SENTENCE_WORDS]
        return self._after

    def prefix(self) -> str:
        """The preposition glued to the front of the occurrence, if any (conjunctions dropped)."""
        if self._prefix is None:
            token = self.prepared.scan()[self.start:self.end]
            form = self.form
            if token.endswith(form):
                chain = token[:-len(form)]
            elif form.startswith("ال") and token.endswith(form[1:]):
                chain = token[:-(len(form) - 1)]  # للميادين: ل + the article's lam
            else:
                chain = ""
            chain = chain.lstrip("وف") if len(chain) > 1 else chain
            self._prefix = chain if chain not in ("و", "ف") else ""
        return self._prefix

    def _masks(self) -> tuple[list[str], list[int], list[str], list[int]]:
        near = self._near
        if near is None:
            # the sentence, its words on each side and their masks in one go (the hot part of a decision)
            m = self.prepared.match
            start, end = self.start, self.end
            lo = start - _REACH if start > _REACH else 0
            last = _LAST_STOP_RE.match(m, lo, start)
            if last is not None:
                lo = last.end()
            hi = end + _REACH
            nxt = _STOP_RE.search(m, end, hi)
            hi = nxt.start() if nxt is not None else min(len(m), hi)
            self._sentence = (lo, hi)
            scan = self.prepared.scan()
            before = scan[lo:start].rsplit(None, SENTENCE_WORDS)
            if len(before) > SENTENCE_WORDS:
                del before[0]  # the rest of the sentence, unsplit
            self._before = before
            after = scan[end:hi].split(None, SENTENCE_WORDS)[:SENTENCE_WORDS]
            self._after = after
            prefix = self.prefix()
            nearest = before[::-1]
            if prefix:
                nearest.insert(0, prefix)
            running = self.index.running
            near = self._near = (nearest, running(nearest), after, running(after))
        return near

    def sentence_bits(self) -> int:
        """The bits of every evidence item with a word in the sentence (either side, the glued
        preposition included)."""
        _, running, _, running_after = self._masks()
        return (running[-1] if running else 0) | (running_after[-1] if running_after else 0)

    def find(self, cue: Cue, explain: bool = True) -> str | None:
        """What of ``cue`` is in its scope here, or None (without ``explain``: "" for a word found)."""
        if cue.clitic is not None and self.prefix() != cue.clitic:
            return None
        if cue.requires is not None and self.find(cue.requires, False) is None:
            return None
        if cue.shape is not None:
            return self._shape(cue.shape)
        found: str | None = None
        if cue.bit:
            found = self._find_words(cue, cue.bit, explain)
        if found is None and cue.phrases and self._find_words(cue, cue.phrase_bit, False) is not None:
            found = _find_phrase(cue, self._runs(cue))
        if found is None and cue.terms:
            found = self._find_terms(cue)
        if found is None and cue.clitic is not None and not (cue.words or cue.stems or cue.phrases or cue.terms):
            found = cue.clitic + "-"
        return found

    def _find_words(self, cue: Cue, bit: int, explain: bool) -> str | None:
        """The nearest word with ``bit`` (of ``cue``) in the scope of ``cue`` (the glued preposition
        counts as one more word before the name), found through the running masks; without
        ``explain`` only whether there is one ("")."""
        where = cue.where
        if where == "document":
            if cue.doc_key and bit == cue.bit:  # found (or not) by the matcher's scan
                return self.document.context.get(cue.doc_key)
            return next((w for w in self.document.words() if self.index.mask(w) & bit), None)
        words_before, running, words_after, running_after = self._masks()
        n = cue.within if where != "sentence" else SENTENCE_WORDS
        if where != "after" and running:
            reach = min(len(running), n + (1 if self._prefix else 0))
            if running[reach - 1] & bit:
                return next(w for w in words_before[:reach] if self.index.mask(w) & bit) if explain else ""
        if where != "before" and running_after:
            reach = min(len(running_after), n)
            if running_after[reach - 1] & bit:
                return next(w for w in words_after[:reach] if self.index.mask(w) & bit) if explain else ""
        return None

    def _runs(self, cue: Cue) -> list[list[str]]:
        """Where the phrases of ``cue`` may sit: runs of words in reading order, reaching as far
        as the scope plus the rest of a phrase that starts in it."""
        where, n, longer = cue.where, cue.within, cue.longest - 1
        if where == "document":
            return [self.document.words()]
        before, after = self.before(), self.after()
        if where == "sentence":
            return [before, after]
        runs = []
        if where != "after":
            runs.append(_tail(before, n + longer))
        if where != "before":
            runs.append(after[:n + longer])
        return runs

    def _find_terms(self, cue: Cue) -> str | None:
        if cue.where == "document":
            for term in cue.terms:
                if term in self.document.present:
                    return term
            return None
        scan = self.prepared.scan()
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
        if shape == "entity_in_document":
            return "counted elsewhere" if self.entity in self.document.present else None
        if shape == "hashtag":
            if "#" not in prepared.normalized and "＃" not in prepared.normalized:
                return None
            n_start = prepared.to_normalized(self.start)
            return "#" if n_start > 0 and prepared.normalized[n_start - 1] in "#＃" else None
        if shape == "after_definite_masculine":
            m = prepared.match
            # the word right before, with nothing but a space between, and nothing on the name itself
            # (والقائم after البوكمال is a second name, not an adjective)
            if (self.start < 2 or m[self.start - 1] != " " or not m[self.start - 2].isalnum()
                    or prepared.scan()[self.start:self.end] != self.form):
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

    __slots__ = ("present", "context", "_positions", "_excluded", "_words", "_fields")

    def __init__(self, present: set[str], positions: Callable[[PreparedText, str], list[tuple[int, int]]],
                 excluded: Mapping[str, str], fields: Iterable[PreparedText],
                 context: Mapping[str, str] | None = None) -> None:
        self.present = present
        self._positions = positions
        self._excluded = excluded
        self._fields = list(fields)
        self._words: list[str] | None = None
        self.context: dict[str, str] = dict(context or {})

    def positions(self, prepared: PreparedText, term: str) -> list[tuple[int, int]]:
        """Match-string spans of the unambiguous mentions of ``term`` in the field ``prepared``."""
        return self._positions(prepared, term)

    def excluded_phrase(self, entity: str) -> str | None:
        """An exclusion phrase of ``entity`` found in the document (the other sense is about)."""
        return self._excluded.get(entity)

    def words(self) -> list[str]:
        if self._words is None:
            self._words = [w for p in self._fields for w in p.scan().split()]
        return self._words
