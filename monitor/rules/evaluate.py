"""Evaluating compiled rules on a document: hits per entity, sense decisions, the rules they fire.

``RuleSet.evaluate`` is pure and thread-safe (no shared mutable state), so the
workers run it in other processes with the rule set sent once. Per document:

1. each field is normalized and scanned once (``Matcher.find``): occurrences
   of aliases, exclusion phrases and keywords, in match-string coordinates;
2. a plain alias or keyword counts unless it sits inside an ``exclude``
   phrase of its entity;
3. an ambiguous alias that no plain hit of its entity covers gets a sense
   decision (``monitor.rules.senses``) from the evidence around it, the plain
   hits of step 2 serving as the document's other entities;
4. one hit per span and entity (a hit inside a longer one of the same entity
   is dropped), then each rule is decided from the per-term positions.

Offsets into the original text (``Hit.start``/``end``/``text``) are mapped back
only when someone reads them: alerts show the hits of the rules that fired,
``rules test`` all of them; deciding the rules needs none.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from monitor.rules.schema import Entity, KeywordSet, Rule, Vocabulary
from monitor.rules.senses import Context, DocumentView, Found, SenseModel, compile_sense
from monitor.text.matcher import (
    DEFAULT_SUFFIXES,
    Matcher,
    Occurrence,
    Pattern,
    PreparedText,
    match_form,
)
from monitor.types import Severity

__all__ = ["RuleSet", "RuleMatch", "Evaluation", "Hit", "Decision"]


class Hit:
    """One mention. ``start``/``end`` index the original field text: ``text == original[start:end]``.

    A hit made by ``evaluate`` maps its offsets back to the original text the
    first time one of them is read; equality, hashing and pickling use the
    mapped values, so a hit compares and travels like a plain record.
    """

    __slots__ = ("entity", "alias", "field", "start", "end", "text", "_source")
    entity: str
    alias: str
    field: str
    start: int
    end: int
    text: str
    _source: tuple[PreparedText, int, int] | None

    def __init__(self, entity: str, alias: str, field: str, start: int, end: int, text: str) -> None:
        self.entity, self.alias, self.field = entity, alias, field
        self.start, self.end, self.text = start, end, text
        self._source = None

    @classmethod
    def pending(cls, entity: str, alias: str, field: str, prepared: PreparedText, start: int, end: int) -> Hit:
        """A hit at match-string ``[start, end)`` of ``prepared``, offsets mapped on first read."""
        hit = cls.__new__(cls)
        hit.entity, hit.alias, hit.field = entity, alias, field
        hit._source = (prepared, start, end)
        return hit

    def __getattr__(self, name: str) -> Any:
        # Only called for a slot not set yet: the offsets of a pending hit.
        if name in ("start", "end", "text"):
            source = object.__getattribute__(self, "_source")
            if source is not None:
                prepared, mstart, mend = source
                a, b = prepared.original_span(mstart, mend)
                self.start, self.end, self.text = a, b, prepared.original[a:b]
                return object.__getattribute__(self, name)
        raise AttributeError(name)

    def _key(self) -> tuple[str, str, str, int, int, str]:
        return self.entity, self.alias, self.field, self.start, self.end, self.text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Hit) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return "Hit(entity={!r}, alias={!r}, field={!r}, start={!r}, end={!r}, text={!r})".format(*self._key())

    def __reduce__(self) -> tuple[type[Hit], tuple[str, str, str, int, int, str]]:
        return Hit, self._key()


class RuleMatch:
    """A rule that fired, with the hits that made it fire (title first, then by position).

    ``hits`` may be given as a tuple or, by ``evaluate``, as a function that makes it on first
    read: deciding the rules needs no ``Hit`` objects, showing an alert does.
    """

    __slots__ = ("rule_id", "title", "description", "severity", "channels", "cooldown", "_hits", "_make_hits")
    _hits: tuple[Hit, ...] | None
    _make_hits: Callable[[], tuple[Hit, ...]] | None

    def __init__(self, rule_id: str, title: str, description: str, severity: Severity, channels: tuple[str, ...],
                 cooldown: float | None, hits: tuple[Hit, ...] | Callable[[], tuple[Hit, ...]]) -> None:
        self.rule_id, self.title, self.description = rule_id, title, description
        self.severity, self.channels, self.cooldown = severity, channels, cooldown
        if callable(hits):
            self._hits, self._make_hits = None, hits
        else:
            self._hits, self._make_hits = tuple(hits), None

    @property
    def hits(self) -> tuple[Hit, ...]:
        if self._hits is None:
            assert self._make_hits is not None
            self._hits = self._make_hits()
            self._make_hits = None
        return self._hits

    def _key(self) -> tuple[str, str, str, Severity, tuple[str, ...], float | None, tuple[Hit, ...]]:
        return self.rule_id, self.title, self.description, self.severity, self.channels, self.cooldown, self.hits

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RuleMatch) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return ("RuleMatch(rule_id={!r}, title={!r}, description={!r}, severity={!r}, channels={!r}, "
                "cooldown={!r}, hits={!r})").format(*self._key())

    def __reduce__(self) -> tuple[type[RuleMatch], tuple[Any, ...]]:
        return RuleMatch, self._key()


@dataclass(frozen=True)
class Decision:
    """Why one occurrence of an alias was counted or not (``evaluate(..., explain=True)``).

    ``reason``: ``alias`` (a plain alias: counted), ``sense`` (an ambiguous
    alias: ``score`` against ``threshold``, from ``evidence``), ``excluded``
    (inside an ``exclude`` phrase), ``covered`` (inside a longer hit of the same
    entity, which is what counts).
    """

    hit: Hit
    counted: bool
    reason: str
    score: float | None = None
    threshold: float | None = None
    evidence: tuple[Found, ...] = ()
    detail: str = ""


class Evaluation:
    """What ``RuleSet.evaluate`` found: the rules that fired, every hit, the terms present.

    ``hits`` is made on first read (the daemon reads only ``matches``).
    """

    __slots__ = ("matches", "entities", "keywords", "decisions", "_hits", "_make_hits")

    def __init__(self, matches: list[RuleMatch], hits: list[Hit] | None = None, entities: list[str] | None = None,
                 keywords: list[str] | None = None, decisions: list[Decision] | None = None, *,
                 make_hits: Callable[[], list[Hit]] | None = None) -> None:
        self.matches = matches
        self.entities = entities if entities is not None else []
        self.keywords = keywords if keywords is not None else []
        self.decisions = decisions if decisions is not None else []
        self._hits = hits
        self._make_hits = make_hits

    @property
    def hits(self) -> list[Hit]:
        if self._hits is None:
            self._hits = self._make_hits() if self._make_hits is not None else []
            self._make_hits = None
        return self._hits

    def _key(self) -> tuple[list[RuleMatch], list[Hit], list[str], list[str], list[Decision]]:
        return self.matches, self.hits, self.entities, self.keywords, self.decisions

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Evaluation) and self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]  # mutable lists inside, like the dataclass it replaces

    def __repr__(self) -> str:
        return (f"Evaluation(matches={[m.rule_id for m in self.matches]!r}, entities={self.entities!r}, "
                f"keywords={self.keywords!r})")


# A counted mention while rules are decided: (field index, start, end, pattern, its index in the
# evaluation's list), match-string offsets.
_Mention = tuple[int, int, int, Pattern, int]
_Field = tuple[str, PreparedText]


class RuleSet:
    """Compiled rules. ``evaluate`` is pure and thread-safe (no shared mutable state)."""

    def __init__(self, entities: list[Entity], keywords: list[KeywordSet], rules: list[Rule], *,
                 vocabularies: Sequence[Vocabulary] = (), sources: list[str] | None = None,
                 fingerprint: str = "") -> None:
        self._entities = {e.id: e for e in entities}
        self._keywords = {k.id: k for k in keywords}
        self._rules = [r for r in rules if r.enabled]
        self._all_rules = list(rules)
        self.sources = list(sources or [])
        self.fingerprint = fingerprint
        words = {v.id: list(v.words) for v in vocabularies}
        patterns: list[Pattern] = []
        self._senses: dict[tuple[str, int], SenseModel] = {}
        self._forms: dict[str, str] = {}  # ambiguous alias -> its match form (to see a clitic on it)
        # tag: 0 = plain alias; i+1 = alias of ambiguous group i
        for e in entities:
            variants, glue = e.spelling_variants, e.missing_spaces
            patterns += [Pattern(e.id, a, "alias", e.clitics, variants=variants, glue=glue) for a in e.aliases]
            patterns += [Pattern(e.id, x, "exclude", e.clitics) for x in e.exclude]
            for gi, amb in enumerate(e.ambiguous):
                patterns += [Pattern(e.id, a, "alias", e.clitics, tag=gi + 1, variants=variants, glue=glue)
                             for a in amb.aliases]
                self._senses[(e.id, gi + 1)] = compile_sense(e.id, amb, words)
                self._forms.update((a, match_form(a)) for a in amb.aliases)
        for k in keywords:
            if k.suffixes is True:
                suffixes = DEFAULT_SUFFIXES
            elif k.suffixes:
                suffixes = frozenset(match_form(s) for s in k.suffixes)
            else:
                suffixes = frozenset()
            for w in k.words:
                patterns.append(Pattern(k.id, w, "keyword", k.clitics, suffixes))
                form = match_form(w)
                if suffixes and form.endswith("ه") and len(form) > 2:
                    # teh marbuta before a suffix is written ت: معركة -> معركته
                    patterns.append(Pattern(k.id, form[:-1] + "ت", "keyword", k.clitics,
                                            frozenset(s for s in suffixes if s)))
        self._matcher = Matcher(patterns)

    @property
    def rule_ids(self) -> list[str]:
        return [r.id for r in self._all_rules]

    @property
    def entity_ids(self) -> list[str]:
        return list(self._entities)

    @property
    def keyword_ids(self) -> list[str]:
        return list(self._keywords)

    def entity(self, entity_id: str) -> Entity:
        return self._entities[entity_id]

    def channels_referenced(self) -> set[str]:
        return {c for r in self._all_rules for c in r.channels}

    # -- hits
    def evaluate(self, title: str = "", body: str = "", *, explain: bool = False) -> Evaluation:
        """Every hit in ``title`` and ``body`` and the rules they fire.

        ``explain``: also one ``Decision`` per alias occurrence (counted or not, and why).
        """
        fields: list[_Field] = []
        found: list[list[Occurrence]] = []
        for name, text in (("title", title), ("body", body)):
            if text:
                prepared = PreparedText(text)
                occurrences = self._matcher.find(prepared)
                if occurrences:
                    fields.append((name, prepared))
                    found.append(occurrences)
        if not fields:
            return Evaluation([], [], [], [], [] if explain else None)
        decisions: list[Decision] | None = [] if explain else None
        mentions = self._mentions(fields, found, decisions)
        by_term: dict[str, list[_Mention]] = {}
        for mention in mentions:
            by_term.setdefault(mention[3].group, []).append(mention)
        made: list[Hit | None] = [None] * len(mentions)

        def hit(mention: _Mention) -> Hit:
            h = made[mention[4]]
            if h is None:
                fi, start, end, pat, i = mention
                name, prepared = fields[fi]
                h = made[i] = Hit.pending(pat.group, pat.alias, name, prepared, start, end)
            return h

        words: dict[int, int] = {}
        matches = [m for r in self._rules if (m := _apply(r, by_term, fields, hit, words)) is not None]
        entities = sorted(t for t in by_term if t in self._entities)
        keywords = sorted(t for t in by_term if t in self._keywords)
        return Evaluation(matches, None, entities, keywords, decisions, make_hits=lambda: [hit(m) for m in mentions])

    def _mentions(self, fields: list[_Field], found: list[list[Occurrence]],
                  decisions: list[Decision] | None) -> list[_Mention]:
        """The counted mentions of every field, ordered by field, then start, then term."""
        plain: list[list[Occurrence]] = []
        ambiguous: list[list[Occurrence]] = []
        excluded: list[dict[str, list[tuple[int, int]]]] = []
        excluded_phrases: dict[str, str] = {}
        present: set[str] = set()
        for fi, occurrences in enumerate(found):
            spans: dict[str, list[tuple[int, int]]] = {}
            for pat, start, end in occurrences:
                if pat.kind == "exclude":
                    spans.setdefault(pat.group, []).append((start, end))
                    excluded_phrases.setdefault(pat.group, pat.alias)
            kept: list[Occurrence] = []
            vague: list[Occurrence] = []
            for o in occurrences:
                pat, start, end = o
                if pat.kind == "exclude":
                    continue
                group_spans = spans.get(pat.group)
                if group_spans and any(a < end and start < b for a, b in group_spans):
                    if decisions is not None:
                        phrase = next(fields[fi][1].match[a:b] for a, b in group_spans if a < end and start < b)
                        decisions.append(Decision(self._pending(fields[fi], o), False, "excluded",
                                                  detail=f"inside the exclusion {phrase!r}"))
                    continue
                if pat.tag:
                    vague.append(o)
                else:
                    kept.append(o)
                    present.add(pat.group)
            plain.append(kept)
            ambiguous.append(vague)
            excluded.append(spans)
        if any(ambiguous):
            positions: dict[tuple[int, str], list[tuple[int, int]]] = {}
            index = {id(prepared): fi for fi, (_, prepared) in enumerate(fields)}

            def where(prepared: PreparedText, term: str) -> list[tuple[int, int]]:
                fi = index[id(prepared)]
                spans = positions.get((fi, term))
                if spans is None:
                    spans = positions[(fi, term)] = [(a, b) for p, a, b in plain[fi] if p.group == term]
                return spans

            document = DocumentView(present, where, excluded_phrases, [p for _, p in fields])
            for fi, vague in enumerate(ambiguous):
                if vague:
                    plain[fi] = plain[fi] + self._decide(fields[fi], vague, plain[fi], document, decisions)
        out: list[_Mention] = []
        for fi, kept in enumerate(plain):
            # one hit per span and entity; drop a hit inside a longer one of the same entity
            kept.sort(key=_by_start)
            last: dict[str, tuple[int, int]] = {}
            for o in kept:
                pat, start, end = o
                g = pat.group
                previous = last.get(g)
                if previous is not None and end <= previous[1]:
                    # another spelling of the same name on the same span says nothing new
                    if decisions is not None and (start, end) != previous:
                        decisions.append(Decision(self._pending(fields[fi], o), True, "covered",
                                                  detail="inside a longer hit of the same entity"))
                    continue
                last[g] = (start, end)
                out.append((fi, start, end, pat, len(out)))
                if decisions is not None and pat.kind == "alias" and not pat.tag:
                    decisions.append(Decision(self._pending(fields[fi], o), True, "alias"))
        return out

    def _decide(self, field_: _Field, vague: list[Occurrence], kept: list[Occurrence], document: DocumentView,
                decisions: list[Decision] | None) -> list[Occurrence]:
        """The ambiguous occurrences of one field that their sense decision counts."""
        _, prepared = field_
        counted: list[Occurrence] = []
        covering: dict[str, list[tuple[int, int]]] = {}
        seen: set[tuple[str, int, int]] = set()
        forms = self._forms
        # the longest alias first where several of one entity found the same span (الميادين, ميادين)
        for o in sorted(vague, key=lambda o: (o[1], -len(forms[o[0].alias]))):
            pat, start, end = o
            spans = covering.get(pat.group)
            if spans is None:
                spans = covering[pat.group] = [(a, b) for p, a, b in kept if p.group == pat.group]
            if (pat.group, start, end) in seen:
                continue
            seen.add((pat.group, start, end))
            if any(a <= start and end <= b for a, b in spans):
                if decisions is not None:
                    decisions.append(Decision(self._pending(field_, o), True, "covered",
                                              detail="inside a longer hit of the same entity"))
                continue
            model = self._senses[(pat.group, pat.tag)]
            ctx = Context(prepared, start, end, self._forms[pat.alias], pat.group, document)
            verdict = model.decide(ctx)
            if verdict.counted:
                counted.append(o)
            if decisions is not None:
                decisions.append(Decision(self._pending(field_, o), verdict.counted, "sense", verdict.score,
                                          verdict.threshold, verdict.evidence))
        return counted

    @staticmethod
    def _pending(field_: _Field, o: Occurrence) -> Hit:
        name, prepared = field_
        pat, start, end = o
        return Hit.pending(pat.group, pat.alias, name, prepared, start, end)


def _by_start(o: Occurrence) -> tuple[int, str, int]:
    """Start, then term, then the longer first: the order of hits, and of the check for nested ones."""
    return o[1], o[0].group, o[1] - o[2]


def _apply(rule: Rule, by_term: dict[str, list[_Mention]], fields: list[_Field],
           hit: Callable[[_Mention], Hit], words: dict[int, int]) -> RuleMatch | None:
    in_scope = [name in rule.fields for name, _ in fields]
    everywhere = all(in_scope)

    def mentions(term: str) -> list[_Mention]:
        found = by_term.get(term, [])
        return found if everywhere else [m for m in found if in_scope[m[0]]]

    if rule.any and not any(mentions(t) for t in rule.any):
        return None
    if rule.all and not all(mentions(t) for t in rule.all):
        return None
    if any(mentions(t) for t in rule.none):
        return None
    for clause in rule.near:
        groups = [mentions(t) for t in clause.terms]
        if not all(groups):
            return None
        _word_indexes(groups, fields, words)
        if not _together(groups, functools.partial(_near, words=words, within=clause.within)):
            return None
    for group in rule.same_sentence:
        groups = [mentions(t) for t in group]
        if not _together(groups, lambda a, b: a[0] == b[0] and (
                fields[a[0]][1].sentence_index(a[1]) == fields[b[0]][1].sentence_index(b[1]))):
            return None
    terms = rule.positive_terms()
    if sum(len(mentions(t)) for t in terms) < rule.min_mentions:
        return None

    def hits() -> tuple[Hit, ...]:
        # the mentions are numbered title first, then by start and term: their order is the hits' order
        chosen = sorted((m for t in terms for m in mentions(t)), key=itemgetter(4))
        return tuple(hit(m) for m in chosen)

    return RuleMatch(rule.id, rule.title, rule.description, rule.severity, tuple(rule.channels), rule.cooldown,
                     hits)


def _near(a: _Mention, b: _Mention, *, words: dict[int, int], within: int) -> bool:
    return a[0] == b[0] and abs(words[a[4]] - words[b[4]]) <= within


def _word_indexes(groups: list[list[_Mention]], fields: list[_Field], words: dict[int, int]) -> None:
    """Fill ``words`` (mention index -> word index in its field) for every mention of ``groups``:
    one pass over each field's match string, counting its spaces between consecutive mentions."""
    todo = sorted({(m[0], m[1], m[4]) for g in groups for m in g if m[4] not in words})
    field_at, at, count = -1, 0, 0
    for fi, start, i in todo:
        if fi != field_at:
            field_at, at, count = fi, 0, 0
        count += fields[fi][1].match.count(" ", at, start)
        at = start
        words[i] = count


def _together(groups: list[list[_Mention]], close: Callable[[_Mention, _Mention], bool]) -> bool:
    """Some mention of the first term is ``close`` to a mention of every other term."""
    anchors, others = groups[0], groups[1:]
    return any(all(any(close(a, o) for o in group) for group in others) for a in anchors)
