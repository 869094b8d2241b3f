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

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import accumulate
from operator import itemgetter
from typing import Any

from monitor.rules.schema import ContextKind, Entity, KeywordSet, Rule, Vocabulary
from monitor.rules.senses import Context, DocumentView, Found, SenseModel, compile_sense
from monitor.text.matcher import (
    CONTEXT,
    DEFAULT_SUFFIXES,
    EXCLUDE,
    PLAIN,
    SENSE,
    Matcher,
    Occurrence,
    Pattern,
    PreparedText,
    match_form,
    match_forms,
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

    __slots__ = ("matches", "entities", "keywords", "decisions", "_hits", "_make_hits", "_maker")

    def __init__(self, matches: list[RuleMatch], hits: list[Hit] | None = None, entities: list[str] | None = None,
                 keywords: list[str] | None = None, decisions: list[Decision] | None = None, *,
                 make_hits: Callable[[], list[Hit]] | None = None,
                 maker: tuple[_HitMaker, list[_Mention]] | None = None) -> None:
        self.matches = matches
        self.entities = entities if entities is not None else []
        self.keywords = keywords if keywords is not None else []
        self.decisions = decisions if decisions is not None else []
        self._hits = hits
        self._make_hits = make_hits
        self._maker = maker

    def hit_dicts(self, shift: Mapping[str, int] | None = None) -> list[dict[str, Any]]:
        """The hits as ``{"entity", "alias", "start", "end", "text"}`` dicts, the offsets of a field
        moved by ``shift[field]`` (``rules test`` prints one per hit: made in one pass)."""
        shift = shift or {}
        if self._hits is None and self._maker is not None:
            made, mentions = self._maker
            return made.dicts(mentions, shift)
        return [{"entity": h.entity, "alias": h.alias, "start": h.start + shift.get(h.field, 0),
                 "end": h.end + shift.get(h.field, 0), "text": h.text} for h in self.hits]

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


#: A hit as a plain tuple: (entity, alias, field, start, end, text).
HitRecord = tuple[str, str, str, int, int, str]
# A counted mention while rules are decided: (field index, start, end, pattern, its index in the
# evaluation's list), match-string offsets.
_Mention = tuple[int, int, int, Pattern, int]
_Field = tuple[str, PreparedText]


class RuleSet:
    """Compiled rules. ``evaluate`` is pure and thread-safe (no shared mutable state)."""

    def __init__(self, entities: list[Entity], keywords: list[KeywordSet], rules: list[Rule], *,
                 vocabularies: Sequence[Vocabulary] = (), kinds: Sequence[ContextKind] = (),
                 sources: list[str] | None = None,
                 fingerprint: str = "") -> None:
        self._entities = {e.id: e for e in entities}
        self._keywords = {k.id: k for k in keywords}
        self._plans = [_Plan.of(r) for r in rules if r.enabled]
        self._all_rules = list(rules)
        self.sources = list(sources or [])
        self.fingerprint = fingerprint
        words = {v.id: list(v.words) for v in vocabularies}
        context_kinds = {k.id: k for k in kinds}
        patterns: list[Pattern] = []
        self._forms: dict[str, str] = {}  # ambiguous alias -> its match form (to see a clitic on it)
        self._senses: list[SenseModel] = []  # by Pattern.tag - 1: the tags of ambiguous groups are global
        # tag: 0 = plain alias; i+1 = alias of the i-th ambiguous group of the rule set
        for e in entities:
            variants, glue = e.spelling_variants, e.missing_spaces
            patterns += [Pattern(e.id, a, "alias", e.clitics, variants=variants, glue=glue) for a in e.aliases]
            patterns += [Pattern(e.id, x, "exclude", e.clitics, role=EXCLUDE) for x in e.exclude]
            for amb in e.ambiguous:
                tag = len(self._senses) + 1
                model = compile_sense(e.id, amb, words, context_kinds, tag)
                self._senses.append(model)
                for cue in model.cues:  # words looked for in the whole document: found by the one scan
                    if cue.doc_key:
                        patterns += [Pattern(cue.doc_key, w, "context", True, role=CONTEXT)
                                     for w in sorted(cue.words)]
                patterns += [Pattern(e.id, a, "alias", e.clitics, tag=tag, variants=variants, glue=glue,
                                     role=SENSE) for a in amb.aliases]
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
        self._matcher = Matcher(_without_double_articles(patterns))

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
        mentions, by_term = self._mentions(fields, found, decisions)
        made = _HitMaker(fields, mentions)
        matches = [m for p in self._plans if (m := _apply(p, by_term, fields, made)) is not None]
        entities = sorted(t for t in by_term if t in self._entities)
        keywords = sorted(t for t in by_term if t in self._keywords)
        return Evaluation(matches, None, entities, keywords, decisions, make_hits=lambda: list(made(mentions)),
                          maker=(made, mentions))

    def _mentions(self, fields: list[_Field], found: list[list[Occurrence]],
                  decisions: list[Decision] | None) -> tuple[list[_Mention], dict[str, list[_Mention]]]:
        """The counted mentions of every field, ordered by field, then start; and by term."""
        plain: list[list[Occurrence]] = []
        ambiguous: list[list[Occurrence]] = []
        excluded_phrases: dict[str, str] = {}
        context: dict[str, str] = {}  # doc_key of a sense item -> the word the matcher found for it
        for fi, occurrences in enumerate(found):
            kept: list[Occurrence] = []
            vague: list[Occurrence] = []
            exclusions: list[Occurrence] = []
            for o in occurrences:
                role = o[0].role
                if role == PLAIN:
                    kept.append(o)
                elif role == SENSE:
                    vague.append(o)
                elif role == EXCLUDE:
                    exclusions.append(o)
                elif o[0].group not in context:
                    context[o[0].group] = fields[fi][1].match[o[1]:o[2]]
            if exclusions:  # rare: drop what an exclusion phrase of the same entity overlaps
                spans: dict[str, list[tuple[int, int]]] = {}
                for pat, a, b in exclusions:
                    spans.setdefault(pat.group, []).append((a, b))
                    excluded_phrases.setdefault(pat.group, pat.alias)
                kept = self._unexcluded(fields[fi], kept, spans, decisions)
                vague = self._unexcluded(fields[fi], vague, spans, decisions)
            plain.append(kept)
            ambiguous.append(vague)
        if any(ambiguous):
            present = {o[0].group for kept in plain for o in kept}
            positions: dict[int, dict[str, list[tuple[int, int]]]] = {}
            index = {id(prepared): fi for fi, (_, prepared) in enumerate(fields)}

            def where(prepared: PreparedText, term: str) -> list[tuple[int, int]]:
                fi = index[id(prepared)]
                by_term = positions.get(fi)
                if by_term is None:  # every term of the field in one pass, on first use
                    by_term = positions[fi] = {}
                    for p, a, b in plain[fi]:
                        by_term.setdefault(p.group, []).append((a, b))
                return by_term.get(term, [])

            document = DocumentView(present, where, excluded_phrases, [p for _, p in fields], context)
            doubtful: list[tuple[int, list[Occurrence]]] = []  # per field: what was not counted
            counted_groups: set[str] = set()
            for fi, vague in enumerate(ambiguous):
                if vague:
                    counted, left = self._decide(fields[fi], vague, plain[fi], document, decisions)
                    plain[fi] = plain[fi] + counted
                    counted_groups.update(o[0].group for o in counted)
                    if left:
                        doubtful.append((fi, left))
            if doubtful and not counted_groups <= present:
                # second pass: entities counted from their context are now known to be in the document
                # (``terms: document``, ``entity_in_document``); what was not counted is decided again
                new = counted_groups - present
                present |= new
                senses = self._senses
                for fi, left in doubtful:
                    left = [o for o in left if not senses[o[0].tag - 1].watches.isdisjoint(new)]
                    if left:
                        counted, _ = self._decide(fields[fi], left, plain[fi], document, decisions, again=True)
                        plain[fi] = plain[fi] + counted
        out: list[_Mention] = []
        by_term: dict[str, list[_Mention]] = {}
        covered: list[tuple[int, Occurrence]] = []
        for fi, kept in enumerate(plain):
            # one hit per span and entity; drop a hit inside a longer one of the same entity. Sorted
            # by start only (a C-level key); at one start the longer comes later (find's order) and
            # takes the place of the shorter.
            kept.sort(key=_START)
            last: dict[str, int] = {}
            for o in kept:
                pat, start, end = o
                g = pat.group
                j = last.get(g)
                if j is not None:
                    previous = out[j]
                    if end <= previous[2]:
                        if (start, end) != (previous[1], previous[2]):
                            covered.append((fi, o))
                        continue
                    if start == previous[1]:
                        covered.append((fi, (previous[3], previous[1], previous[2])))
                        out[j] = mention = (fi, start, end, pat, j)
                        same = by_term[g]
                        same[same.index(previous)] = mention
                        continue
                last[g] = len(out)
                mention = (fi, start, end, pat, len(out))
                out.append(mention)
                group_mentions = by_term.get(g)
                if group_mentions is None:
                    by_term[g] = [mention]
                else:
                    group_mentions.append(mention)
        if decisions is not None:
            for fi, o in covered:
                decisions.append(Decision(self._pending(fields[fi], o), True, "covered",
                                          detail="inside a longer hit of the same entity"))
            for fi, start, end, pat, _ in out:
                if pat.kind == "alias" and not pat.tag:
                    decisions.append(Decision(self._pending(fields[fi], (pat, start, end)), True, "alias"))
        return out, by_term

    def _unexcluded(self, field_: _Field, occurrences: list[Occurrence], spans: dict[str, list[tuple[int, int]]],
                    decisions: list[Decision] | None) -> list[Occurrence]:
        """``occurrences`` without those an exclusion phrase of their entity overlaps."""
        kept = []
        for o in occurrences:
            pat, start, end = o
            group_spans = spans.get(pat.group)
            overlap = next(((a, b) for a, b in group_spans if a < end and start < b), None) if group_spans else None
            if overlap is None:
                kept.append(o)
            elif decisions is not None:
                phrase = field_[1].match[overlap[0]:overlap[1]]
                decisions.append(Decision(self._pending(field_, o), False, "excluded",
                                          detail=f"inside the exclusion {phrase!r}"))
        return kept

    def _decide(self, field_: _Field, vague: list[Occurrence], kept: list[Occurrence], document: DocumentView,
                decisions: list[Decision] | None, again: bool = False) -> tuple[list[Occurrence], list[Occurrence]]:
        """The ambiguous occurrences of one field that their sense decision counts, and those it does
        not. ``again``: a second decision of occurrences not counted the first time (its decision
        replaces the first in ``decisions``)."""
        _, prepared = field_
        counted: list[Occurrence] = []
        left: list[Occurrence] = []
        covering: dict[str, list[tuple[int, int]]] = {o[0].group: [] for o in vague}
        for p, a, b in kept:
            spans = covering.get(p.group)
            if spans is not None:
                spans.append((a, b))
        reach: dict[str, tuple[list[int], list[int]]] = {}  # group -> (starts, furthest end so far)
        for group, spans in covering.items():
            spans.sort()
            reach[group] = ([a for a, _ in spans], list(accumulate((b for _, b in spans), max)))
        seen: set[tuple[str, int, int]] = set()
        forms = self._forms
        earlier: dict[tuple[str, int, int], int] = {}
        if again and decisions is not None:
            earlier = {(d.hit.entity, *d.hit._source[1:]): i for i, d in enumerate(decisions)
                       if d.reason == "sense" and not d.counted and d.hit._source is not None
                       and d.hit._source[0] is prepared}
        # the longest alias first where several of one entity found the same span (الميادين, ميادين)
        for o in sorted(vague, key=lambda o: (o[1], -len(forms[o[0].alias]))):
            pat, start, end = o
            if (pat.group, start, end) in seen:
                continue
            seen.add((pat.group, start, end))
            starts, furthest = reach[pat.group]
            i = bisect_right(starts, start)
            if i and furthest[i - 1] >= end:  # a plain hit of the entity starts before and ends after
                if decisions is not None and not again:
                    decisions.append(Decision(self._pending(field_, o), True, "covered",
                                              detail="inside a longer hit of the same entity"))
                continue
            model = self._senses[pat.tag - 1]
            ctx = Context(prepared, start, end, self._forms[pat.alias], pat.group, document, model.index)
            verdict = model.decide(ctx, decisions is not None)
            if verdict.counted:
                counted.append(o)
            else:
                left.append(o)
            if decisions is not None:
                decision = Decision(self._pending(field_, o), verdict.counted, "sense", verdict.score,
                                    verdict.threshold, verdict.evidence,
                                    detail="decided again: other entities counted in the document" if again else "")
                j = earlier.get((pat.group, start, end))
                if j is None:
                    decisions.append(decision)
                else:
                    decisions[j] = decision
        return counted, left

    @staticmethod
    def _pending(field_: _Field, o: Occurrence) -> Hit:
        name, prepared = field_
        pat, start, end = o
        return Hit.pending(pat.group, pat.alias, name, prepared, start, end)


def _without_double_articles(patterns: list[Pattern]) -> list[Pattern]:
    """An alias without the article whose group also lists it with the article (بوكمال and البوكمال,
    حدود and الحدود) does not take the article itself: the other finds that form."""
    forms = match_forms([p.alias for p in patterns])
    by_group: dict[str, set[str]] = {}
    for p, form in zip(patterns, forms, strict=True):
        by_group.setdefault(p.group, set()).add(form)
    return [replace(p, article=False) if not form.startswith("ال") and "ال" + form in by_group[p.group] else p
            for p, form in zip(patterns, forms, strict=True)]


class _HitMaker:
    """The ``Hit`` of each mention of one evaluation, made once, offsets mapped a field at a time."""

    __slots__ = ("fields", "made")

    def __init__(self, fields: list[_Field], mentions: list[_Mention]) -> None:
        self.fields = fields
        self.made: list[Hit | None] = [None] * len(mentions)

    def __call__(self, mentions: Sequence[_Mention]) -> tuple[Hit, ...]:
        made = self.made
        todo = [m for m in mentions if made[m[4]] is None]
        if todo:
            for m, record in zip(todo, self.records(todo), strict=True):
                made[m[4]] = Hit(*record)
        return tuple(made[m[4]] for m in mentions)  # type: ignore[misc]  # every one made above

    def _parts(self, mentions: Sequence[_Mention]) -> list[tuple[str, PreparedText, list[_Mention]]]:
        # mentions are grouped by field, in field order (``_mentions`` numbers them so)
        if len(self.fields) == 1:
            name, prepared = self.fields[0]
            return [(name, prepared, list(mentions))]
        return [(name, prepared, [m for m in mentions if m[0] == fi])
                for fi, (name, prepared) in enumerate(self.fields)]

    def records(self, mentions: Sequence[_Mention]) -> list[HitRecord]:
        """``(entity, alias, field, start, end, text)`` of each mention, offsets mapped a field at a time."""
        out: list[HitRecord] = []
        for name, prepared, mine in self._parts(mentions):
            text = prepared.original
            spans = prepared.original_spans([(m[1], m[2]) for m in mine])
            out += [(m[3].group, m[3].alias, name, a, b, text[a:b]) for m, (a, b) in zip(mine, spans, strict=True)]
        return out

    def dicts(self, mentions: Sequence[_Mention], shift: Mapping[str, int]) -> list[dict[str, Any]]:
        """``records`` as ``{"entity", "alias", "start", "end", "text"}`` dicts, the offsets of a field
        moved by ``shift[field]`` (one pass: what ``rules test`` prints for every hit)."""
        out: list[dict[str, Any]] = []
        for name, prepared, mine in self._parts(mentions):
            text = prepared.original
            k = shift.get(name, 0)
            spans = prepared.original_spans([(m[1], m[2]) for m in mine])
            out += [{"entity": m[3].group, "alias": m[3].alias, "start": a + k, "end": b + k, "text": text[a:b]}
                    for m, (a, b) in zip(mine, spans, strict=True)]
        return out


_START = itemgetter(1)


@dataclass(frozen=True, slots=True)
class _Plan:
    """A rule as ``evaluate`` checks it: term tuples, the positive terms, the fields."""

    rule: Rule
    fields: frozenset[str]
    any: tuple[str, ...]
    all: tuple[str, ...]
    none: tuple[str, ...]
    near: tuple[tuple[tuple[str, ...], int], ...]
    same_sentence: tuple[tuple[str, ...], ...]
    positive: tuple[str, ...]
    channels: tuple[str, ...]
    needed: frozenset[str]  # every term that must be found (``all``, and the terms of ``near``/``same_sentence``)

    @classmethod
    def of(cls, rule: Rule) -> _Plan:
        needed = frozenset(rule.all) | {t for n in rule.near for t in n.terms} | {
            t for g in rule.same_sentence for t in g}
        return cls(rule, frozenset(rule.fields), tuple(rule.any), tuple(rule.all), tuple(rule.none),
                   tuple((tuple(n.terms), n.within) for n in rule.near), tuple(tuple(g) for g in rule.same_sentence),
                   tuple(rule.positive_terms()), tuple(rule.channels), needed)


def _apply(plan: _Plan, by_term: dict[str, list[_Mention]], fields: list[_Field],
           made: Callable[[Sequence[_Mention]], tuple[Hit, ...]]) -> RuleMatch | None:
    if all(name in plan.fields for name, _ in fields):
        found = by_term
    else:  # a rule on some fields only: their mentions
        scope = {fi for fi, (name, _) in enumerate(fields) if name in plan.fields}
        found = {t: kept for t, ms in by_term.items() if (kept := [m for m in ms if m[0] in scope])}
    present = found.keys()
    if plan.any and present.isdisjoint(plan.any):
        return None
    if not present >= plan.needed:  # (an all-C test: most rules stop here)
        return None
    if plan.none and not present.isdisjoint(plan.none):
        return None
    # every term of near and same_sentence is in ``plan.needed``: found, checked above
    for terms, within in plan.near:
        if not _near([found[t] for t in terms], fields, within):
            return None
    for group in plan.same_sentence:
        if not _together([found[t] for t in group], lambda a, b: a[0] == b[0] and (
                fields[a[0]][1].sentence_index(a[1]) == fields[b[0]][1].sentence_index(b[1]))):
            return None
    rule = plan.rule
    positive = [found[t] for t in plan.positive if t in found]
    if rule.min_mentions > 1 and sum(map(len, positive)) < rule.min_mentions:
        return None
    if not positive:
        return None

    def hits() -> tuple[Hit, ...]:
        # the mentions are numbered title first, then by start and term: their order is the hits' order
        return made(sorted((m for ms in positive for m in ms), key=itemgetter(4)))

    return RuleMatch(rule.id, rule.title, rule.description, rule.severity, plan.channels, rule.cooldown, hits)


def _near(groups: list[list[_Mention]], fields: list[_Field], within: int) -> bool:
    """Some mention of the first term has a mention of every other term within ``within`` words
    (spaces of the match string between their starts) in the same field. The spaces between two
    starts grow with the characters between them, so only the nearest start on each side is counted."""
    others = []
    for group in groups[1:]:
        by_field: dict[int, list[int]] = {}
        for m in group:
            by_field.setdefault(m[0], []).append(m[1])
        for starts in by_field.values():
            starts.sort()
        others.append(by_field)
    for a in groups[0]:
        match = fields[a[0]][1].match
        for by_field in others:
            near = by_field.get(a[0])
            if not near or not _close(near, a[1], match, within):
                break
        else:
            return True
    return False


def _close(starts: list[int], start: int, match: str, within: int) -> bool:
    """A mention starting at one of ``starts`` (sorted) within ``within`` words of one starting at
    ``start``: at most ``within`` spaces between the two starts (``PreparedText.word_index``)."""
    i = bisect_left(starts, start)
    for j in (i - 1, i):
        if 0 <= j < len(starts):
            lo, hi = sorted((starts[j], start))
            if hi - lo <= within or match.count(" ", lo, hi) <= within:
                return True
    return False


def _together(groups: list[list[_Mention]], close: Callable[[_Mention, _Mention], bool]) -> bool:
    """Some mention of the first term is ``close`` to a mention of every other term."""
    anchors, others = groups[0], groups[1:]
    return any(all(any(close(a, o) for o in group) for group in others) for a in anchors)
