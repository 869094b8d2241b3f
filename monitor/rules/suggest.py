"""Draft entity rules from a folder of articles: the names in it, not its common words.

An analyst starting on a new front wants the names the articles are about.
Raw frequency gives the words every Arabic article uses (السورية, المدينة),
so each candidate is scored against general Arabic instead: how many times
more often it occurs here than in a word-frequency list of general Arabic
(wordfreq's Arabic list: Wikipedia, subtitles, news, web and Twitter text),
taking the 95% lower confidence bound of its count so that a word seen twice
does not win on a lucky ratio. Names and topic terms rise, common words sink.

The steps, each a general mechanism rather than a list of known names:

* **Words** are normalized (``monitor.text.normalize``) and lose the proclitic
  chain the matcher folds (``monitor.text.matcher.PROCLITICS``): وبالبوكمال and
  البوكمال are one word. A chain is stripped only when the rest is the
  better attested word (in the corpus, or in general Arabic), so بلدة stays
  بلدة while لقسد becomes قسد.
* **Multi-word names** are word sequences whose every split is a strong
  collocation (normalized PMI), seen at least ``min_count`` times in
  different contexts (a passage copied by several outlets is no name), with
  no function word and no conjunction inside. A sequence
  that occurs mostly inside one longer candidate is a fragment of it (سوريا
  الديمقراطية inside قوات سوريا الديمقراطية); the longest stable form is the
  candidate and the fragment, where it also stands alone, its short form.
  A phrase that only adds one word to a name that stands on its own (ريف دير
  الزور, تنظيم داعش), or is made of such names, is listed under that name.
  General Arabic has no frequency for a sequence: it is estimated from its
  rarest word, taking the share of that word's uses it has here.
* **Variants** are forms whose letters differ only in long vowels, spacing
  and a final ا/ة (الديمقراطية / الديموقراطية, دير الزور / ديرالزور, سوريا /
  سورية): one candidate lists the spellings actually seen. An acronym is
  linked to its long form when its letters are the initials of the long
  form's words (قسد / قوات سوريا الديمقراطية) or when the corpus writes it in
  brackets or quotes right after (or before) the long form and its letters
  occur in order in it.
* **Ambiguity**: a one-word form that general Arabic also writes with the
  article toggled (العمر / عمر, النمر / نمر), or without a pronoun suffix
  (معركتها / معركة), at least once per million words and at least a tenth as
  often, is a common word as well as a name. It goes into an ``ambiguous:``
  block with the context words the corpus shows around it, a draft of the
  sense evidence.
* **The pack**: every candidate is looked up with the loaded rules' own
  matcher (``RuleSet.evaluate``), on its forms and at its places in the
  corpus, so a run on fresh articles shows what the pack misses.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path

from monitor.rules.evaluate import RuleSet
from monitor.text.matcher import PROCLITICS
from monitor.text.normalize import normalize
from monitor.text.tokenize import tokenize

__all__ = [
    "AmbiguousForm",
    "Background",
    "Candidate",
    "Document",
    "Form",
    "NearWord",
    "Settings",
    "SuggestInputError",
    "Suggestions",
    "read_documents",
    "suggest",
    "to_json",
    "to_yaml",
    "wordfreq_background",
]


# ------------------------------------------------------------------------------ input

@dataclass(frozen=True)
class Document:
    id: str
    text: str


class SuggestInputError(ValueError):
    """Bad input, located: the file, and where known the line and field."""

    def __init__(self, file: Path | str, message: str, line: int | None = None,
                 field_name: str | None = None) -> None:
        where = f"{file}:{line}" if line is not None else str(file)
        if field_name:
            where += f": field {field_name!r}"
        super().__init__(f"{where}: {message}")
        self.file, self.line, self.field_name = str(file), line, field_name


def _decode(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SuggestInputError(path, f"cannot read ({exc.strerror or exc})") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise SuggestInputError(path, f"not UTF-8 text (byte 0x{raw[exc.start]:02x} cannot be decoded)",
                                line=line) from None


def _jsonl_documents(path: Path) -> list[Document]:
    docs: list[Document] = []
    for n, line in enumerate(_decode(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise SuggestInputError(path, f"not a JSON object ({exc})", line=n) from None
        if not isinstance(obj, dict):
            raise SuggestInputError(path, "not a JSON object", line=n)
        text = obj.get("text")
        if not isinstance(text, str):
            raise SuggestInputError(path, "missing or not a string", line=n, field_name="text")
        doc_id = obj.get("id", f"{path.name}:{n}")
        if not isinstance(doc_id, (str, int)):
            raise SuggestInputError(path, "not a string", line=n, field_name="id")
        docs.append(Document(str(doc_id), text))
    return docs


def read_documents(source: Path) -> list[Document]:
    """The documents of a folder of ``*.txt``, a ``.txt`` file or a ``.jsonl`` of ``{"id", "text"}``.

    Strict UTF-8: a file that is not is an error naming it (a replacement
    character would silently split the words around it).
    """
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix == ".txt" and p.is_file())
        if not files:
            raise SuggestInputError(source, "no .txt files in this folder (suggest reads a folder of .txt, "
                                            "a .txt file or a .jsonl of {\"id\", \"text\"} lines)")
        return [Document(p.name, _decode(p)) for p in files]
    if not source.exists():
        raise SuggestInputError(source, "no such file or folder")
    if source.suffix == ".jsonl":
        docs = _jsonl_documents(source)
        if not docs:
            raise SuggestInputError(source, "no documents (empty file)")
        return docs
    return [Document(source.name, _decode(source))]


# ------------------------------------------------------------------------------ settings

@dataclass(frozen=True)
class Settings:
    """The knobs, each set from a general argument rather than from the evaluation sets.

    ``min_count`` 2: a name said once is not yet a pattern; contrast, not
    frequency, does the rest. ``min_variety`` 2: seen with two different
    neighbours on each side (accessor variety), so a passage copied by several
    outlets is not taken for a name. ``min_npmi`` 0.5: the middle of NPMI's [0, 1]
    range of positive association. ``dominance`` 0.5: a sequence found inside
    one longer candidate at most of its occurrences is that candidate's
    fragment. ``function_zipf`` 6: words used more than once per thousand words
    of general Arabic (في, من, التي) never start or end a name.
    ``common_zipf`` 3 and ``common_ratio`` 0.1: a form is also a common word
    when general Arabic writes it with the article toggled at least once per
    million words and at least a tenth as often as the form itself.
    ``near_window`` 6 words, ``near_words`` 8 context words per ambiguous form.
    """

    min_count: int = 2
    min_variety: int = 2
    max_words: int = 5
    min_npmi: float = 0.5
    dominance: float = 0.5
    function_zipf: float = 6.0
    common_zipf: float = 3.0
    common_ratio: float = 0.1
    near_window: int = 6
    near_words: int = 8


# ------------------------------------------------------------------------------ background

@dataclass(frozen=True)
class Background:
    """Word frequencies of general Arabic by normalized form (the contrast the scores are taken against)."""

    name: str
    frequencies: Mapping[str, float]
    floor: float  # the list's smallest frequency: what a form it lacks is taken to have

    @classmethod
    def from_frequencies(cls, name: str, frequencies: Mapping[str, float]) -> Background:
        """Fold a surface-form frequency list onto normalized forms (أ/إ/ا, ة/ه, ى/ي... summed)."""
        table: dict[str, float] = defaultdict(float)
        for word, freq in frequencies.items():
            table[normalize(word)] += freq
        floor = min(frequencies.values(), default=1e-9)
        return cls(name, dict(table), floor)

    def raw(self, form: str) -> float:
        """Frequency of exactly this normalized form."""
        return self.frequencies.get(form, 0.0)

    def zipf(self, form: str) -> float:
        """log10 of occurrences per billion words (wordfreq's scale); 0 for a form the list lacks."""
        f = self.raw(form)
        return math.log10(f) + 9.0 if f > 0 else 0.0

    def with_clitics(self, form: str) -> float:
        """Frequency of the form with any proclitic chain the matcher folds (و ب ل... and لل for ال)."""
        total = self.raw(form)
        for chain in PROCLITICS:
            total += self.raw(chain + form)
        if form.startswith("ال"):
            for chain in ("ل", "ول", "فل"):
                total += self.raw(chain + form[1:])
        return max(total, self.floor)


@cache
def wordfreq_background() -> Background:
    """wordfreq's largest Arabic list, normalized (loaded once per process, ~1 s)."""
    from importlib.metadata import version

    import wordfreq

    wordlist = "large" if "ar" in wordfreq.available_languages("large") else "best"
    freqs = wordfreq.get_frequency_dict("ar", wordlist)
    name = f"wordfreq {version('wordfreq')} '{wordlist}' list for 'ar' ({len(freqs):,} word forms)"
    return Background.from_frequencies(name, freqs)


# ------------------------------------------------------------------------------ results

@dataclass(frozen=True)
class Form:
    """One spelling of a candidate, as written (clitics stripped), and how often the corpus has it."""

    text: str
    count: int


@dataclass(frozen=True)
class NearWord:
    word: str
    count: int


@dataclass(frozen=True)
class AmbiguousForm:
    """A form that is also a common word: counts only with sense evidence (``near``)."""

    text: str
    count: int
    zipf: float  # of the form in general Arabic
    common_as: str  # the article-toggled form general Arabic uses as a word
    common_zipf: float
    near: tuple[NearWord, ...]


@dataclass(frozen=True)
class Candidate:
    label: str
    score: float  # log10 of how many times more often than in general Arabic (95% lower bound)
    count: int  # occurrences of the unambiguous forms (or of the ambiguous ones when there are no others)
    documents: int
    aliases: tuple[Form, ...]  # each with all its uses (inside a longer form too)
    ambiguous: tuple[AmbiguousForm, ...]
    in_pack: tuple[str, ...]  # entities the pack finds on these forms, or at most of their places
    contains: tuple[str, ...]  # entities the pack finds inside them (not the whole name)
    seen_in: tuple[Form, ...]  # phrases that only add a word to this name (ريف دير الزور)
    example: str


@dataclass(frozen=True)
class Suggestions:
    candidates: tuple[Candidate, ...]
    source: str
    documents: int
    words: int
    background: str
    pack: str | None
    settings: Settings = field(default_factory=Settings)


# ------------------------------------------------------------------------------ words

_CLAUSE_END = frozenset(".!?؟؛;:،,…")
_OPENING = frozenset("(«“\"'[{‹‘")
_CLOSING = frozenset(")»”\"']}›’")
_ARABIC_WORD = re.compile("[\u0621-\u063a\u0641-\u064a\u067e\u0686\u0698\u06af]+")
_LONE_CLITICS = frozenset("وفبلكس")
_MARKS = re.compile("[\u064b-\u0652\u0670\u0640]")
_MIN_STEM = 2  # letters left after a proclitic chain (لقسد -> قسد, وفك -> فك)
# Attached pronouns as written (ه here is the pronoun: teh marbuta is still ة in the surface form).
_PRONOUN_SUFFIXES = ("هما", "كما", "هم", "هن", "ها", "كم", "نا", "ه")


@dataclass
class _Word:
    surface: str
    norm: str
    start: int
    end: int
    opens: bool = False  # an opening bracket or quote right before it
    closes: bool = False  # a closing one right after it


def _runs(text: str) -> list[list[_Word]]:
    """Runs of Arabic words: broken at clause punctuation, line breaks and non-Arabic tokens.

    Quotes, brackets and dashes are transparent, as in the matcher (حقل "العمر").
    """
    runs: list[list[_Word]] = []
    current: list[_Word] = []
    last_end = 0
    open_at = -1

    def flush() -> None:
        nonlocal current
        if current:
            runs.append(current)
        current = []

    for tok in tokenize(text):
        if "\n" in text[last_end:tok.start]:
            flush()
        s = tok.text
        if len(s) == 1 and unicodedata.category(s)[0] in "PS":
            if s in _CLAUSE_END:
                flush()
            else:
                if s in _CLOSING and current and current[-1].end == tok.start:
                    current[-1].closes = True
                if s in _OPENING:
                    open_at = tok.end
            last_end = tok.end
            continue
        last_end = tok.end
        norm = normalize(s)
        if _ARABIC_WORD.fullmatch(norm) is None:
            flush()
            continue
        if norm in _LONE_CLITICS:  # a proclitic written apart: لـ"النشرة"
            continue
        current.append(_Word(s, norm, tok.start, tok.end, opens=open_at == tok.start))
    flush()
    return runs


def _strip_options(norm: str) -> list[tuple[str, int, bool]]:
    """(rest, letters removed, alef restored) for each proclitic chain ``norm`` may carry."""
    out: list[tuple[str, int, bool]] = []
    for chain in PROCLITICS:
        if norm.startswith(chain) and len(norm) - len(chain) >= _MIN_STEM:
            out.append((norm[len(chain):], len(chain), False))
            if chain.endswith("ل") and norm.startswith("ل", len(chain)):
                out.append(("ا" + norm[len(chain):], len(chain), True))  # للبوكمال = ل + البوكمال
    return out


def _display(surface: str, removed: int, alef: bool) -> str:
    """The written word without its first ``removed`` letters (and harakat/tatweel)."""
    clean = _MARKS.sub("", surface)
    return ("ا" if alef else "") + clean[removed:]


def _is_function(word: str, background: Background, settings: Settings) -> bool:
    """A word used more than ``function_zipf`` allows (في, التي), or one with a pronoun (فيها, عنه)."""
    if background.zipf(word) >= settings.function_zipf:
        return True
    for suffix in _PRONOUN_SUFFIXES:
        stem = word[:-len(suffix)]
        if word.endswith(suffix) and len(stem) >= _MIN_STEM:
            return background.zipf(stem) >= settings.function_zipf
    return False


class _Corpus:
    """The corpus as one token array (base form, full form, where) with run and document bounds."""

    def __init__(self, documents: Sequence[Document], background: Background, settings: Settings) -> None:
        self.documents = documents
        self.words: list[_Word] = []
        self.doc_of: list[int] = []
        self.run_start: list[int] = []
        self.run_end: list[int] = []
        for d, doc in enumerate(documents):
            for run in _runs(doc.text):
                a = len(self.words)
                self.words += run
                self.doc_of += [d] * len(run)
                self.run_start += [a] * len(run)
                self.run_end += [a + len(run)] * len(run)
        self.size = len(self.words)
        full = [w.norm for w in self.words]
        counts = Counter(full)
        joined = Counter(full[i] + full[i + 1] for i in range(self.size - 1) if self.run_end[i] > i + 1)
        total = max(self.size, 1)

        def attested(form: str) -> float:
            """Uses of ``form`` as a word of its own: here (also written apart) and in general Arabic."""
            return counts[form] + joined[form] + total * background.raw(form)

        # A word keeps its first letters when general Arabic knows it better than what is left
        # (بلدة, فيصل); its own count here says nothing either way, except for a word general
        # Arabic does not know at all (a local name).
        self.strip: dict[str, tuple[str, int, bool]] = {}
        for norm in counts:
            known = background.raw(norm)
            best, best_score = (norm, 0, False), total * known if known else attested(norm)
            for option in _strip_options(norm):
                score = attested(option[0])
                if score > best_score:
                    best, best_score = option, score
            self.strip[norm] = best
        self.full = full
        self.base = [self.strip[f][0] for f in full]
        # A conjunction starts a new conjunct (الميادين والبوكمال): no word sequence spans it.
        start = 0
        for i in range(self.size):
            if self.run_start[i] == i or self.strip[full[i]][1] and full[i][0] in "وف":
                start = i
            self.run_start[i] = start
        end = self.size
        for i in range(self.size - 1, -1, -1):
            if i + 1 < self.size and self.run_start[i + 1] == i + 1:
                end = i + 1
            self.run_end[i] = end
        self.function = {w for w in set(self.base) | set(full) if _is_function(w, background, settings)}
        self.surfaces: dict[str, Counter[str]] = defaultdict(Counter)
        for i, b in enumerate(self.base):
            self.surfaces[b][self.display(i, 1)] += 1

    def surface(self, base: str) -> str:
        """A base form as most often written."""
        seen = self.surfaces.get(base)
        return seen.most_common(1)[0][0] if seen else base

    def base_of(self, norm: str) -> str:
        """The word without its proclitic chain (a base form is its own base)."""
        found = self.strip.get(norm)
        return found[0] if found is not None else norm

    def is_content(self, norm: str) -> bool:
        return self.base_of(norm) not in self.function

    def key(self, i: int, n: int) -> tuple[str, ...]:
        """The n words from ``i``: the first without its proclitics, the others as written."""
        return (self.base[i],) + tuple(self.full[i + 1:i + n])

    def display(self, i: int, n: int) -> str:
        first = self.words[i]
        removed, alef = self.strip[first.norm][1], self.strip[first.norm][2]
        parts = [_display(first.surface, removed, alef)] + [_MARKS.sub("", w.surface)
                                                             for w in self.words[i + 1:i + n]]
        return " ".join(parts)

    def context(self, i: int, n: int, width: int = 6) -> str:
        d = self.doc_of[i]
        lo = i
        while lo > 0 and i - lo < width and self.doc_of[lo - 1] == d:
            lo -= 1
        hi = i + n
        while hi < self.size and hi - (i + n) < width and self.doc_of[hi] == d:
            hi += 1
        text = self.documents[d].text
        w = self.words
        snippet = (text[w[lo].start:w[i].start] + "[" + text[w[i].start:w[i + n - 1].end] + "]"
                   + text[w[i + n - 1].end:w[hi - 1].end])
        return " ".join(snippet.split())


# ------------------------------------------------------------------------------ n-grams

def _count_ngrams(corpus: _Corpus, settings: Settings) -> tuple[Counter[tuple[str, ...]], Counter[tuple[str, ...]]]:
    """Counts of word sequences keyed by base-first form and by full form (Apriori-pruned).

    A sequence is counted only where its (n-1)-word prefix and suffix reach
    ``min_count``; the condition depends on the key alone, so every count kept
    is exact.
    """
    by_base: Counter[tuple[str, ...]] = Counter()
    by_full: Counter[tuple[str, ...]] = Counter()
    base, full, end = corpus.base, corpus.full, corpus.run_end
    for i in range(corpus.size):
        by_base[(base[i],)] += 1
        by_full[(full[i],)] += 1
    mc = settings.min_count
    for n in range(2, settings.max_words + 1):
        grew = False
        for i in range(corpus.size - n + 1):
            if i + n > end[i]:
                continue
            tail = tuple(full[i + 1:i + n - 1])
            if by_base[(base[i],) + tail] < mc or by_base[(base[i + 1],) + tuple(full[i + 2:i + n])] < mc:
                continue
            by_base[(base[i],) + tail + (full[i + n - 1],)] += 1
            by_full[tuple(full[i:i + n])] += 1
            grew = True
        if not grew:
            break
    return by_base, by_full


def _npmi(joint: int, left: int, right: int, total: int) -> float:
    p_xy = joint / total
    if p_xy >= 1.0:
        return 1.0
    return math.log(p_xy / ((left / total) * (right / total))) / -math.log(p_xy)


def _is_candidate(key: tuple[str, ...], count: int, by_base: Counter[tuple[str, ...]],
                  by_full: Counter[tuple[str, ...]], corpus: _Corpus, settings: Settings) -> bool:
    if count < settings.min_count or key[0] in corpus.function or not all(map(corpus.is_content, key[1:])):
        return False
    return all(_npmi(count, by_base[key[:k]], by_full[key[k:]], corpus.size) >= settings.min_npmi
               for k in range(1, len(key)))


# ------------------------------------------------------------------------------ spelling

def _skeleton(form: str) -> str:
    """Letters that carry a name's spelling: spaces and long vowels out, a word-final ا/ة alike."""
    joined = "".join(w[:-1] + ("#" if w[-1] in "اه" else w[-1]) for w in form.split(" ") if w)
    return joined[:1] + re.sub("[اوي]", "", joined[1:])


def _edit_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def _spelling_variants(a: str, b: str) -> bool:
    """Same name, other spelling: same skeleton and one or two letters apart (spaces aside)."""
    if _skeleton(a) != _skeleton(b):
        return False
    x, y = a.replace(" ", ""), b.replace(" ", "")
    return _edit_distance(x, y) <= (1 if min(len(x), len(y)) <= 5 else 2)


def _initials(words: Sequence[str], function: set[str]) -> str:
    out = []
    for w in words:
        if w in function:
            continue
        out.append(w[2] if w.startswith("ال") and len(w) > 3 else w[0])
    return "".join(out)


def _abbreviates(short: str, words: Sequence[str]) -> bool:
    """Schwartz-Hearst test: the short form's letters occur in order, its first at a word start."""
    starts = {w[2] if w.startswith("ال") and len(w) > 3 else w[0] for w in words}
    if short[0] not in starts:
        return False
    letters = iter("".join(words))
    return all(c in letters for c in short)


# ------------------------------------------------------------------------------ the ranking

class _Group:
    """Candidates found to name one thing."""

    def __init__(self) -> None:
        self.keys: list[tuple[str, ...]] = []
        self.short: dict[tuple[str, ...], int] = {}  # short form -> its free occurrences
        self.seen_in: list[tuple[str, ...]] = []


def _keyness(observed: int, expected: float) -> float:
    """log10 of how many times more often than in general Arabic, at 95% confidence.

    The rate is the one-sided 95% lower bound of a Poisson count (Wilson-Hilferty),
    so a word seen twice does not outrank one seen fifty times on a lucky ratio,
    and a frequent common word does not outrank a name on its count alone.
    """
    if observed <= 0:
        return -math.inf
    k = float(observed)
    lower = k * max(1.0 - 1.0 / (9.0 * k) - 1.645 / (3.0 * math.sqrt(k)), 0.0) ** 3
    return math.log10(max(lower, 1e-12) / expected)


class _Ranker:
    def __init__(self, documents: Sequence[Document], background: Background, pack: RuleSet | None,
                 settings: Settings) -> None:
        self.bg = background
        self._common: dict[tuple[str, ...], tuple[str, float, bool] | None] = {}
        self.own: dict[tuple[str, ...], tuple[str, ...]] = {}  # a phrase's words outside the names in it
        self.pack = pack
        self.settings = settings
        self.corpus = _Corpus(documents, background, settings)
        self.by_base, self.by_full = _count_ngrams(self.corpus, settings)
        c = self.corpus
        self.candidates = {k for k, n in self.by_base.items()
                           if _is_candidate(k, n, self.by_base, self.by_full, c, settings)}
        self.positions: dict[tuple[str, ...], list[int]] = defaultdict(list)
        lengths = sorted({len(k) for k in self.candidates})
        for n in lengths:
            for i in range(c.size - n + 1):
                if i + n <= c.run_end[i]:
                    key = c.key(i, n)
                    if key in self.candidates:
                        self.positions[key].append(i)
        for key in [k for k, places in self.positions.items() if not self._free(k, places)]:
            self.candidates.discard(key)
            del self.positions[key]

    def _free(self, key: tuple[str, ...], places: list[int]) -> bool:
        """Seen in ``min_variety`` different contexts on each side: the two words before it, and
        the two after (a clause edge, quote or bracket ends a context and is always new).

        A name is used in many sentences; a passage that several outlets copied
        repeats with the same words around it.
        """
        n = len(key)
        left: set[object] = set()
        right: set[object] = set()
        for i in places:
            left.add(self._context(i, -1) or i)
            right.add(self._context(i + n - 1, 1) or -i - 1)
        return min(len(left), len(right)) >= self.settings.min_variety

    def _context(self, i: int, step: int) -> tuple[str, ...]:
        """Up to two words next to position ``i`` (``step`` -1: before it, 1: after it) in its clause."""
        c, w = self.corpus, self.corpus.words
        out: list[str] = []
        j = i
        for _ in range(2):
            nxt = j + step
            if not c.run_start[i] <= nxt < c.run_end[i]:
                break
            if (w[j].opens or w[nxt].closes) if step < 0 else (w[nxt].opens or w[j].closes):
                break
            out.append(c.full[nxt])
            j = nxt
        return tuple(out)

    # -- forms
    def words_of(self, key: tuple[str, ...]) -> list[str]:
        """Each word of a sequence without its proclitics."""
        return [key[0]] + [self.corpus.base_of(w) for w in key[1:]]

    def is_ambiguous(self, key: tuple[str, ...]) -> tuple[str, float, bool] | None:
        """(a related common word, its zipf, whether it is the form's own stem) when a one-word
        form is also a common word.

        Related: the form with the article toggled (العمر / عمر: a homograph),
        or, for a word without the article, its stem without a pronoun suffix
        (معركتها / معركة: the same word, inflected). Common: general Arabic uses
        the related word at least once per million words and at least a tenth
        as often as the form itself.
        """
        if len(key) != 1:
            return None
        if key in self._common:
            return self._common[key]
        form = key[0]
        related = [(form[2:] if form.startswith("ال") and len(form) > 3 else "ال" + form, False)]
        if not form.startswith("ال"):
            surface = self.corpus.surface(form)
            for suffix in _PRONOUN_SUFFIXES:
                stem = surface[:-len(suffix)]
                if surface.endswith(suffix) and len(stem) >= _MIN_STEM:
                    related.append((normalize(stem), True))
                    if stem.endswith("ت"):
                        related.append((normalize(stem[:-1] + "ة"), True))
                    break
        best, own_stem = max(related, key=lambda r: self.bg.zipf(r[0]))
        z_form, z_best = self.bg.zipf(form), self.bg.zipf(best)
        s = self.settings
        found = None
        if z_best >= s.common_zipf and z_best >= z_form + math.log10(s.common_ratio):
            found = (best, z_best, own_stem)
        self._common[key] = found
        return found

    def background_of(self, key: tuple[str, ...]) -> float:
        """Frequency in general Arabic (with clitics): exact for a word, estimated for a sequence.

        A sequence is taken to use the same share of its rarest content word
        (outside the names it contains) as it does here: حقل العمر is 2 of the
        10 uses of حقل here, so 2/10 of حقل's frequency. It never exceeds the
        word's own frequency, and overstates a name whose word general Arabic
        mostly uses otherwise. An inflected word (معركتها) counts with its stem.
        """
        if len(key) == 1:
            freq = self.bg.with_clitics(key[0])
            common = self.is_ambiguous(key)
            if common is not None and common[2]:
                freq += self.bg.with_clitics(common[0])
            return freq
        words = self.own.get(key) or self.words_of(key)
        content = [w for w in words if w not in self.corpus.function] or words
        rarest = min(content, key=self.bg.with_clitics)
        share = len(self.places(key)) / max(self.by_base[(rarest,)], len(self.places(key)), 1)
        return self.bg.with_clitics(rarest) * share

    def score(self, counts: Mapping[tuple[str, ...], int], forms: Sequence[tuple[str, ...]]) -> float:
        """A name is as distinctive as its best evidence: one spelling with its variants pooled
        (قسد; قوات سوريا الديمقراطية / قوات سورية الديموقراطية), since a rare spelling is no
        rarer a name, and a long form's general frequency is only estimated."""
        size = max(self.corpus.size, 1)
        clusters: list[list[tuple[str, ...]]] = []
        for k in forms:
            for cluster in clusters:
                if any(_spelling_variants(" ".join(k), " ".join(other)) for other in cluster):
                    cluster.append(k)
                    break
            else:
                clusters.append([k])
        return max(_keyness(sum(counts[k] for k in cl), size * sum(self.background_of(k) for k in cl))
                   for cl in clusters)

    # -- structure
    def parents(self) -> dict[tuple[str, ...], tuple[tuple[str, ...], int, bool]]:
        """Fragment -> (the one-word-longer candidate it mostly occurs in, occurrences outside it,
        whether that candidate adds its word on the left: the fragment is its tail)."""
        c = self.corpus
        out: dict[tuple[str, ...], tuple[tuple[str, ...], int, bool]] = {}
        for key, places in self.positions.items():
            n = len(key)
            around: Counter[tuple[tuple[str, ...], bool]] = Counter()
            for i in places:
                if i > c.run_start[i]:
                    around[(c.key(i - 1, n + 1), True)] += 1
                if i + n < c.run_end[i]:
                    around[(c.key(i, n + 1), False)] += 1
            # extensions that differ only in spelling pool their counts (سورية الديموقراطية /
            # سورية الديمقراطية after قوات سورية)
            pooled: dict[tuple[str, bool], list[tuple[int, tuple[str, ...]]]] = defaultdict(list)
            for (ext, tail), m in around.items():
                if ext in self.candidates:
                    pooled[(_skeleton(" ".join(ext)), tail)].append((m, ext))
            if not pooled:
                continue
            (_, tail), members = max(pooled.items(), key=lambda kv: (sum(m for m, _ in kv[1]), kv[0]))
            m = sum(n for n, _ in members)
            if m > self.settings.dominance * len(places):
                out[key] = (max(members)[1], len(places) - m, tail)
        return out

    def groups(self) -> list[_Group]:
        parents = self.parents()
        roots = sorted(k for k in self.candidates if k not in parents)

        def root_of(key: tuple[str, ...]) -> tuple[str, ...]:
            while key in parents:
                key = parents[key][0]
            return key

        # Names inside a longer candidate: a phrase made of them (داعش في البوكمال) or adding one
        # word to one (ريف دير الزور) is listed under that name; any other phrase is as
        # distinctive as its own words (مجلس دير الزور العسكري: مجلس, العسكري).
        alone = {k for k in roots if self.is_ambiguous(k) is None}
        host: dict[tuple[str, ...], tuple[str, ...]] = {}
        for key in roots:
            n = len(key)
            if n < 2:
                continue
            words = self.words_of(key)
            inside = [False] * n
            inner: list[tuple[str, ...]] = []
            for a in range(n):
                for b in range(a + 1, n + 1):
                    sub = (words[a],) + key[a + 1:b]
                    if b - a < n and sub in alone:
                        inner.append(sub)
                        inside[a:b] = [True] * (b - a)
            if not inner:
                continue
            own = tuple(w for w, hidden in zip(words, inside) if not hidden and w not in self.corpus.function)
            longest = max(inner, key=lambda k: (len(k), len(self.positions[k]), k))
            if not own or len(longest) == n - 1:
                host[key] = longest
            else:
                self.own[key] = own

        def final(key: tuple[str, ...]) -> tuple[str, ...]:
            key = root_of(key)
            while key in host:
                key = host[key]
            return key

        names = [k for k in roots if k not in host]
        index = {k: i for i, k in enumerate(names)}
        parent_of = list(range(len(names)))

        def find(i: int) -> int:
            while parent_of[i] != i:
                parent_of[i] = parent_of[parent_of[i]]
                i = parent_of[i]
            return i

        def union(a: tuple[str, ...], b: tuple[str, ...]) -> None:
            ra, rb = find(index[a]), find(index[b])
            if ra != rb:
                parent_of[max(ra, rb)] = min(ra, rb)

        by_skeleton: dict[str, list[tuple[str, ...]]] = defaultdict(list)
        for k in names:
            by_skeleton[_skeleton(" ".join(k))].append(k)
        for same in by_skeleton.values():
            for x in same:
                for y in same:
                    if x < y and _spelling_variants(" ".join(x), " ".join(y)) and (
                            self.is_ambiguous(x) is None or self.is_ambiguous(y) is None):
                        union(x, y)  # two common words (النمر / النمور) are two words
        for short, long_ in self.acronyms(names):
            union(short, long_)

        groups: dict[int, _Group] = defaultdict(_Group)
        for k in names:
            groups[find(index[k])].keys.append(k)
        # A short form is what writers keep of a long name: a tail word (العمر of حقل العمر,
        # never the head حقل) or several words (سوريا الديمقراطية, تنظيم الدولة).
        for key, (_parent, free, tail) in parents.items():
            target = final(key)
            if target in index and free >= self.settings.min_count and (tail or len(key) > 1):
                groups[find(index[target])].short[key] = free
        for key, target in host.items():
            groups[find(index[final(target)])].seen_in.append(key)
        return list(groups.values())

    def acronyms(self, names: list[tuple[str, ...]]) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
        """(short, long) pairs: initials, or a bracketed/quoted short form next to the long one."""
        c = self.corpus
        singles = {k[0]: k for k in names if len(k) == 1 and 2 <= len(k[0]) <= 6}
        links: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
        for key in names:
            if len(key) < 2:
                continue
            words = [key[0]] + [c.base_of(w) for w in key[1:]]
            content = [w for w in words if w not in c.function]
            found = singles.get(_initials(words, c.function))
            if found is None:
                beside: Counter[str] = Counter()
                n = len(key)
                for i in self.positions[key]:
                    j = i + n
                    if j < c.run_end[i] and c.words[j].opens and c.words[j].closes:
                        beside[c.base[j]] += 1
                    if i > c.run_start[i] and c.words[i - 1].closes and c.words[i].opens:
                        beside[c.base[i - 1]] += 1
                for short, _n in beside.most_common():
                    if short in singles and _abbreviates(short, content):
                        found = singles[short]
                        break
            if found is not None:
                links.append((found, key))
        return links

    # -- variants seen below min_count, and the places of every form
    def extra_variants(self, groups: list[_Group]) -> dict[int, Counter[tuple[str, ...]]]:
        c = self.corpus
        wanted: dict[str, list[tuple[int, str]]] = defaultdict(list)
        lengths: set[int] = set()
        for g, group in enumerate(groups):
            for k in group.keys:
                form = " ".join(k)
                wanted[_skeleton(form)].append((g, form))
                lengths |= {n for n in (len(k) - 1, len(k), len(k) + 1) if 1 <= n <= self.settings.max_words}
        known = {k for group in groups for k in list(group.keys) + list(group.short)}
        found: dict[int, Counter[tuple[str, ...]]] = defaultdict(Counter)
        for n in sorted(lengths):
            for i in range(c.size - n + 1):
                if i + n > c.run_end[i] or c.base[i] in c.function or not c.is_content(c.full[i + n - 1]):
                    continue
                key = c.key(i, n)
                if key in known:
                    continue
                form = " ".join(key)
                for g, other in wanted.get(_skeleton(form), ()):
                    if _spelling_variants(form, other) and (
                            self.is_ambiguous(key) is None or self.is_ambiguous(tuple(other.split(" "))) is None):
                        found[g][key] += 1
                        break
        return found

    def places(self, key: tuple[str, ...]) -> list[int]:
        if key in self.positions:
            return self.positions[key]
        c, n = self.corpus, len(key)
        out = [i for i in range(c.size - n + 1) if i + n <= c.run_end[i] and c.key(i, n) == key]
        self.positions[key] = out
        return out

    # -- the pack
    def pack_hits(self) -> list[list[tuple[str, int, int]]]:
        if self.pack is None:
            return [[] for _ in self.corpus.documents]
        return [[(h.entity, h.start, h.end) for h in self.pack.evaluate(body=d.text).hits]
                for d in self.corpus.documents]

    def bare_coverage(self, form: str) -> set[str]:
        if self.pack is None:
            return set()
        return {h.entity for h in self.pack.evaluate(body=form).hits if h.start == 0 and h.end == len(form)}


def suggest(documents: Sequence[Document], background: Background, pack: RuleSet | None = None,
            settings: Settings = Settings(), *, source: str = "", new_only: bool = False,
            top: int | None = None) -> Suggestions:
    """Rank the names of ``documents`` against general Arabic and draft one entity per name."""
    r = _Ranker(documents, background, pack, settings)
    c = r.corpus
    groups = r.groups()
    extra = r.extra_variants(groups)
    doc_hits = r.pack_hits()
    out: list[Candidate] = []
    for g, group in enumerate(groups):
        members = list(group.keys) + list(extra.get(g, {}))
        counts: dict[tuple[str, ...], int] = {k: len(r.places(k)) for k in members}
        counts.update(group.short)
        forms = sorted(set(members) | set(group.short), key=lambda k: (-counts[k], k))
        plain = [k for k in forms if r.is_ambiguous(k) is None]
        unclear = [k for k in forms if k not in plain]
        scored = plain or unclear
        k_obs = sum(counts[k] for k in scored)
        places = {k: r.places(k) for k in forms}
        surfaces = {k: Counter(c.display(i, len(k)) for i in places[k]) for k in forms}
        text = {k: surfaces[k].most_common(1)[0][0] if surfaces[k] else " ".join(k) for k in forms}
        label_key = max(scored, key=lambda k: (len(r.places(k)), -len(k)))  # the most used form
        first = min(places[label_key]) if places[label_key] else None
        example = c.context(first, len(label_key)) if first is not None else ""
        docs = {c.doc_of[i] for k in forms for i in places[k]}
        in_pack, contains = _coverage(r, forms, places, text, doc_hits)
        names = {k: places[k] for k in plain}
        covered = {j for k, where in names.items() for i in where for j in range(i, i + len(k))}
        ambiguous = tuple(_ambiguous_form(r, k, len(places[k]), [i for i in places[k] if i not in covered],
                                          text[k], names) for k in unclear)
        seen_in = tuple(sorted((Form(c.display(r.places(k)[0], len(k)), len(r.places(k)))
                                for k in group.seen_in if r.places(k)), key=lambda f: (-f.count, f.text)))
        out.append(Candidate(
            label=text[label_key], score=round(r.score(counts, scored), 2), count=k_obs, documents=len(docs),
            aliases=tuple(sorted((Form(text[k], len(places[k])) for k in plain), key=lambda f: -f.count)),
            ambiguous=ambiguous,
            in_pack=tuple(sorted(in_pack)), contains=tuple(sorted(contains - in_pack)), seen_in=seen_in[:5],
            example=example))
    out.sort(key=lambda cand: (-cand.score, -cand.count, cand.label))
    if new_only:
        out = [cand for cand in out if not cand.in_pack]
    if top is not None:
        out = out[:top]
    pack_name = ", ".join(pack.sources) if pack is not None else None
    return Suggestions(tuple(out), source, len(documents), c.size, background.name, pack_name, settings)


def _coverage(r: _Ranker, forms: list[tuple[str, ...]], places: Mapping[tuple[str, ...], list[int]],
              text: Mapping[tuple[str, ...], str],
              doc_hits: list[list[tuple[str, int, int]]]) -> tuple[set[str], set[str]]:
    """Entities the pack finds on the forms themselves or at most of their places; and inside them."""
    c = r.corpus
    in_pack: set[str] = set()
    for k in forms:
        in_pack |= r.bare_coverage(text[k])
    whole: Counter[str] = Counter()
    inside: set[str] = set()
    total = 0
    for k in forms:
        n = len(k)
        for i in places[k]:
            total += 1
            a, b = c.words[i].start, c.words[i + n - 1].end
            covering = set()
            for entity, s, e in doc_hits[c.doc_of[i]]:
                if s <= a and e >= b:
                    covering.add(entity)
                elif s < b and a < e:
                    inside.add(entity)
            whole.update(covering)
    in_pack |= {e for e, n in whole.items() if 2 * n >= total}
    return in_pack, inside


def _near(r: _Ranker, key: tuple[str, ...], places: list[int]) -> Counter[str]:
    """Content words within ``near_window`` words of the places of ``key`` (same document)."""
    c, window = r.corpus, r.settings.near_window
    near: Counter[str] = Counter()
    n = len(key)
    for i in places:
        d = c.doc_of[i]
        for j in range(max(0, i - window), min(c.size, i + n + window)):
            if c.doc_of[j] == d and not i <= j < i + n and c.base[j] not in c.function:
                near[c.base[j]] += 1
    return near


def _ambiguous_form(r: _Ranker, key: tuple[str, ...], count: int, places: list[int], text: str,
                    names: Mapping[tuple[str, ...], list[int]]) -> AmbiguousForm:
    """The form, why it is ambiguous, and the context words that speak for the name sense.

    ``places`` are its uses outside the unambiguous forms (العمر alone, not
    inside حقل العمر). Beside an unambiguous form of the same name, the
    evidence is the long form's own words (حقل, counted once per use of the
    long form) and the words around both.
    Alone, it is the words around it that are topical here (more frequent
    than in general Arabic): the analyst still reads them, as they may show
    the other sense too.
    """
    c, s = r.corpus, r.settings
    common = r.is_ambiguous(key)
    assert common is not None
    near = _near(r, key, places)
    del near[key[0]]
    total = max(c.size, 1)
    if names:
        support = Counter(w for k in names for w in r.words_of(k))
        for k, where in names.items():
            support.update(_near(r, k, where))
        for k, where in names.items():  # the long form's own words: حقل for العمر
            for w in r.words_of(k):
                if w != key[0] and w not in c.function:
                    near[w] += len(where)
        evidence = [(w, m) for w, m in near.items() if support[w]]
    else:
        evidence = [(w, m) for w, m in near.items() if r.by_base[(w,)] > total * r.bg.with_clitics(w)]
    min_near = 2 if len(places) >= 4 else 1
    ranked = sorted((wm for wm in evidence if wm[1] >= min_near),
                    key=lambda wm: (-wm[1], r.bg.with_clitics(wm[0]), wm[0]))[:s.near_words]
    words = tuple(NearWord(c.surface(w), m) for w, m in ranked)
    return AmbiguousForm(text, count, round(r.bg.zipf(key[0]), 2), common[0], round(common[1], 2), words)


# ------------------------------------------------------------------------------ output

def _q(text: str) -> str:
    """A YAML double-quoted scalar (JSON strings are valid YAML)."""
    return json.dumps(text, ensure_ascii=False)


def _comment(text: str) -> str:
    return " ".join(text.split())


def to_yaml(result: Suggestions) -> str:
    """A rules file a person edits: ``monitor rules check`` accepts it as it is."""
    lines = [
        "# Draft generated by `monitor rules suggest` - edit before use: keep the real names,",
        "# merge or split candidates, give each a readable id, add English labels and a kind.",
        f"# corpus: {_comment(result.source)} ({result.documents} documents, {result.words} words)",
        f"# background (general Arabic): {result.background}",
        "# score: log10 of how many times more often each name occurs here than in general Arabic (95% lower bound)",
        f"# pack compared against: {result.pack or 'none'}",
        f"# settings: {', '.join(f'{k}={v}' for k, v in asdict(result.settings).items())}",
    ]
    if not result.candidates:
        return "\n".join(lines + ["entities: []"]) + "\n"
    lines.append("entities:")
    for n, cand in enumerate(result.candidates, 1):
        lines.append("")
        lines.append(f"  # {n}. {cand.label}: {cand.count} mentions in {cand.documents} documents, "
                     f"score {cand.score:g}")
        if cand.in_pack:
            lines.append(f"  # in the pack: {', '.join(cand.in_pack)}")
        if cand.contains:
            lines.append(f"  # contains names the pack knows: {', '.join(cand.contains)}")
        if cand.seen_in:
            lines.append("  # seen in: " + ", ".join(f"{f.text} ({f.count})" for f in cand.seen_in))
        if cand.example:
            lines.append(f"  # e.g. {_comment(cand.example)}")
        lines.append(f"  - id: candidate_{n:03d}")
        lines.append(f"    labels: {{ar: {_q(cand.label)}}}")
        if cand.aliases:
            lines.append("    aliases:")
            lines += [f"      - {_q(f.text)}  # {f.count}" for f in cand.aliases]
        else:
            lines.append("    aliases: []")
        if cand.ambiguous:
            lines.append("    ambiguous:")
            for a in cand.ambiguous:
                lines.append(f"      # {a.text}: {a.count} here; general Arabic also writes {a.common_as} "
                             f"(zipf {a.common_zipf:g}): keep only with sense evidence")
                lines.append(f"      - aliases: [{_q(a.text)}]")
                if a.near:
                    lines.append("        near:")
                    lines += [f"          - {_q(w.word)}  # {w.count}" for w in a.near]
                lines.append(f"        window: {result.settings.near_window}")
    return "\n".join(lines) + "\n"


def to_json(result: Suggestions) -> str:
    """The same result for tools: one JSON object."""
    return json.dumps(asdict(result), ensure_ascii=False, indent=1)

