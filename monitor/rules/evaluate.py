"""Evaluating compiled rules on a document: hits per entity, then the rules they fire.

``RuleSet.evaluate`` is pure and thread-safe (no shared mutable state), so the
workers run it in other processes with the rule set sent once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from monitor.rules.schema import Entity, KeywordSet, Rule
from monitor.text.matcher import (
    DEFAULT_SUFFIXES,
    Matcher,
    Occurrence,
    Pattern,
    PreparedText,
    match_form,
)
from monitor.types import Severity

__all__ = ["RuleSet", "RuleMatch", "Evaluation", "Hit"]


@dataclass(frozen=True)
class Hit:
    """One mention. ``start``/``end`` index the original field text: ``text == original[start:end]``."""

    entity: str
    alias: str
    field: str
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class RuleMatch:
    """A rule that fired, with the hits that made it fire."""

    rule_id: str
    title: str
    description: str
    severity: Severity
    channels: tuple[str, ...]
    cooldown: float | None
    hits: tuple[Hit, ...]


@dataclass(frozen=True)
class Evaluation:
    matches: list[RuleMatch]
    hits: list[Hit]
    entities: list[str]
    keywords: list[str] = field(default_factory=list)


class _Found:
    """A hit plus where it sits in its field's match string (for near / same_sentence)."""

    __slots__ = ("hit", "prepared", "mstart")

    def __init__(self, hit: Hit, prepared: PreparedText, mstart: int) -> None:
        self.hit, self.prepared, self.mstart = hit, prepared, mstart

    @property
    def word(self) -> int:
        return self.prepared.word_index(self.mstart)

    @property
    def sentence(self) -> int:
        return self.prepared.sentence_index(self.mstart)


class RuleSet:
    """Compiled rules. ``evaluate`` is pure and thread-safe (no shared mutable state)."""

    def __init__(self, entities: list[Entity], keywords: list[KeywordSet], rules: list[Rule], *,
                 sources: list[str] | None = None, fingerprint: str = "") -> None:
        self._entities = {e.id: e for e in entities}
        self._keywords = {k.id: k for k in keywords}
        self._rules = [r for r in rules if r.enabled]
        self._all_rules = list(rules)
        self.sources = list(sources or [])
        self.fingerprint = fingerprint
        patterns: list[Pattern] = []
        # tag: 0 = plain alias; i+1 = alias of ambiguous group i; context words use kind "context"
        for e in entities:
            patterns += [Pattern(e.id, a, "alias", e.clitics) for a in e.aliases]
            patterns += [Pattern(e.id, x, "exclude", e.clitics) for x in e.exclude]
            for gi, amb in enumerate(e.ambiguous):
                patterns += [Pattern(e.id, a, "alias", e.clitics, tag=gi + 1) for a in amb.aliases]
                patterns += [Pattern(e.id, w, "context", True, DEFAULT_SUFFIXES, tag=gi + 1) for w in amb.near]
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
    def _field_hits(self, field_name: str, text: str) -> list[_Found]:
        prepared = PreparedText(text)
        occurrences = self._matcher.find(prepared)
        if not occurrences:
            return []
        excluded: dict[str, list[tuple[int, int]]] = {}
        context: dict[tuple[str, int], list[int]] = {}
        candidates: list[Occurrence] = []
        for o in occurrences:
            pat, start, end = o
            kind = pat.kind
            if kind == "exclude":
                excluded.setdefault(pat.group, []).append((start, end))
            elif kind == "context":
                context.setdefault((pat.group, pat.tag), []).append(start)
            else:
                candidates.append(o)
        kept: list[Occurrence] = []
        for o in candidates:
            pat, start, end = o
            spans = excluded.get(pat.group)
            if spans and any(a < end and start < b for a, b in spans):
                continue
            if pat.tag and pat.kind == "alias":
                amb = self._entities[pat.group].ambiguous[pat.tag - 1]
                if not (amb.quoted and prepared.is_quoted(start, end)):
                    here = prepared.word_index(start)
                    near = context.get((pat.group, pat.tag), ())
                    if not any(abs(prepared.word_index(p) - here) <= amb.window for p in near):
                        continue
            kept.append(o)
        # one hit per span and entity; drop a hit inside a longer one of the same entity
        kept.sort(key=lambda o: (o[0].group, o[1], -(o[2] - o[1])))
        out: list[_Found] = []
        last: dict[str, int] = {}
        for pat, start, end in kept:
            g = pat.group
            if end <= last.get(g, -1):
                continue
            last[g] = end
            a, b = prepared.original_span(start, end)
            out.append(_Found(Hit(g, pat.alias, field_name, a, b, text[a:b]), prepared, start))
        out.sort(key=lambda f: (f.hit.start, f.hit.entity))
        return out

    def evaluate(self, title: str = "", body: str = "") -> Evaluation:
        """Every hit in ``title`` and ``body`` and the rules they fire."""
        found: list[_Found] = []
        for name, text in (("title", title), ("body", body)):
            if text:
                found += self._field_hits(name, text)
        by_term: dict[str, list[_Found]] = {}
        for f in found:
            by_term.setdefault(f.hit.entity, []).append(f)
        matches = [m for r in self._rules if (m := self._apply(r, by_term)) is not None]
        hits = [f.hit for f in found]
        entities = sorted({h.entity for h in hits if h.entity in self._entities})
        keywords = sorted({h.entity for h in hits if h.entity in self._keywords})
        return Evaluation(matches=matches, hits=hits, entities=entities, keywords=keywords)

    @staticmethod
    def _apply(rule: Rule, by_term: dict[str, list[_Found]]) -> RuleMatch | None:
        scope = set(rule.fields)

        def mentions(term: str) -> list[_Found]:
            return [f for f in by_term.get(term, ()) if f.hit.field in scope]

        if rule.any and not any(mentions(t) for t in rule.any):
            return None
        if rule.all and not all(mentions(t) for t in rule.all):
            return None
        if any(mentions(t) for t in rule.none):
            return None
        for clause in rule.near:
            if not _together(clause.terms, mentions, lambda a, b, w=clause.within:
                             a.prepared is b.prepared and abs(a.word - b.word) <= w):
                return None
        for group in rule.same_sentence:
            if not _together(group, mentions, lambda a, b:
                             a.prepared is b.prepared and a.sentence == b.sentence):
                return None
        hits = sorted({f.hit for t in rule.positive_terms() for f in mentions(t)},
                      key=lambda h: (h.field != "title", h.start, h.entity))
        if len(hits) < rule.min_mentions:
            return None
        return RuleMatch(rule.id, rule.title, rule.description, rule.severity, tuple(rule.channels),
                         rule.cooldown, tuple(hits))


def _together(terms: list[str], mentions, close) -> bool:
    """Some mention of the first term is ``close`` to a mention of every other term."""
    anchors = mentions(terms[0])
    others = [mentions(t) for t in terms[1:]]
    return any(all(any(close(a, o) for o in group) for group in others) for a in anchors)
