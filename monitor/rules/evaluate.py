"""The YAML rule language: entities, keyword sets and rules, compiled once.

People edit these files, so loading never raises a traceback: every problem
becomes a ``ConfigError`` with file:line:column, the field and a "did you
mean" suggestion, and all of them are reported together as ``ConfigErrors``.
A ``RuleSet`` is immutable after ``load_rules``; the daemon swaps the whole
object on reload, so a bad file keeps the old rules running.

File shape (any file may hold any of the three lists)::

    entities:
      - id: omar_field
        labels: {ar: حقل العمر, en: al-Omar oil field}
        aliases: [حقل العمر, al-Omar oil field]
        ambiguous:                  # aliases that only count with context
          - aliases: [العمر]
            near: [حقل, نفط, قسد]   # within `window` words, same field
            window: 8
            quoted: false          # true: «العمر» on its own also counts
        exclude: [متوسط العمر]      # phrases that are never this entity
    keywords:
      - id: fighting
        words: [اشتباك, هجوم]
        suffixes: true             # plural/dual/pronoun endings (or a list)
    rules:
      - id: omar_fighting
        title: Fighting for the al-Omar field
        severity: warning          # info | warning | critical
        all: [omar_field, fighting]
        near: [{terms: [omar_field, fighting], within: 15}]
        same_sentence: [[qasad, omar_field]]
        none: [...]
        any: [...]
        fields: [title, body]
        min_mentions: 1
        channels: []               # empty: every channel
        cooldown: 2h               # seconds or 90s / 30m / 2h / 1d
"""

from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Iterable, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from monitor.errors import ConfigError, ConfigErrors
from monitor.text.matcher import DEFAULT_SUFFIXES, Matcher, Occurrence, Pattern, PreparedText, match_form
from monitor.yamlfile import YamlDocument, errors_from_validation, load_yaml, model_field_names

__all__ = ["load_rules", "RuleSet", "RuleMatch", "Evaluation", "Hit", "parse_duration"]

FIELDS = ("title", "body")
_ID_RE = r"^[a-z][a-z0-9_]*$"
MAX_ALIASES = 200_000


# --------------------------------------------------------------------------- results

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
    severity: str
    channels: tuple[str, ...]
    cooldown: float | None
    hits: tuple[Hit, ...]


@dataclass(frozen=True)
class Evaluation:
    matches: list[RuleMatch]
    hits: list[Hit]
    entities: list[str]
    keywords: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- schema

class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _non_empty(value: str) -> str:
    if not match_form(value):
        raise ValueError(f"empty alias (nothing left after normalization): {value!r}")
    return value


AliasText = Annotated[str, AfterValidator(_non_empty)]


class Labels(_Model):
    ar: str | None = None
    en: str | None = None


class Ambiguous(_Model):
    aliases: list[AliasText] = Field(min_length=1)
    near: list[AliasText] = []
    window: int = Field(8, ge=1, le=200)
    quoted: bool = False


class Entity(_Model):
    id: str = Field(pattern=_ID_RE)
    labels: Labels = Labels()
    kind: str | None = None
    aliases: list[AliasText] = []
    ambiguous: list[Ambiguous] = []
    exclude: list[AliasText] = []
    clitics: bool = True


class KeywordSet(_Model):
    id: str = Field(pattern=_ID_RE)
    description: str = ""
    words: list[AliasText] = Field(min_length=1)
    suffixes: bool | list[str] = False
    clitics: bool = True


class Near(_Model):
    terms: list[str] = Field(min_length=2)
    within: int = Field(10, ge=1, le=500)


def parse_duration(value: Any) -> float | None:
    """``3600``, ``"90s"``, ``"30m"``, ``"2h"``, ``"1d"`` -> seconds."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("cooldown must be seconds or a duration like 30m")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("cooldown must not be negative")
        return float(value)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", str(value))
    if not m:
        raise ValueError(f"cooldown {value!r} is not seconds or a duration like 30m, 2h, 1d")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


class Rule(_Model):
    id: str = Field(pattern=_ID_RE)
    title: str = Field(min_length=1)
    description: str = ""
    severity: Literal["info", "warning", "critical"] = "info"
    channels: list[str] = []
    cooldown: float | None = None
    fields: list[Literal["title", "body"]] = Field(default_factory=lambda: list(FIELDS), min_length=1)
    any: list[str] = []
    all: list[str] = []
    none: list[str] = []
    near: list[Near] = []
    same_sentence: list[list[str]] = []
    min_mentions: int = Field(1, ge=1)
    enabled: bool = True

    @field_validator("cooldown", mode="before")
    @classmethod
    def _cooldown(cls, v: Any) -> float | None:
        return parse_duration(v)

    @field_validator("same_sentence")
    @classmethod
    def _pairs(cls, v: list[list[str]]) -> list[list[str]]:
        for group in v:
            if len(group) < 2:
                raise ValueError("each same_sentence group needs at least two terms")
        return v

    def positive_terms(self) -> list[str]:
        terms = list(self.any) + list(self.all)
        for n in self.near:
            terms += n.terms
        for g in self.same_sentence:
            terms += g
        return list(dict.fromkeys(terms))


class RulesFile(_Model):
    entities: list[Entity] = []
    keywords: list[KeywordSet] = []
    rules: list[Rule] = []


_KNOWN = model_field_names(RulesFile)


# --------------------------------------------------------------------------- loading

def _expand(paths: Iterable[Path | str]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            out += sorted(q for q in p.iterdir() if q.suffix in (".yaml", ".yml") and q.is_file())
        else:
            out.append(p)
    return out


def load_rules(paths: Iterable[Path | str]) -> "RuleSet":
    """Load, validate and compile rule files (a directory means every *.yaml/*.yml in it).

    Raises ``ConfigErrors`` listing every problem found; never anything else
    for bad input.
    """
    files = _expand(paths)
    errors: list[ConfigError] = []
    if not files:
        raise ConfigErrors([ConfigError("no rule files found", file=", ".join(map(str, paths)) or ".")])
    parsed: list[tuple[YamlDocument, RulesFile]] = []
    digest = hashlib.sha256()
    for path in files:
        try:
            doc = load_yaml(path)
        except ConfigError as exc:
            errors.append(exc)
            continue
        try:
            digest.update(str(path.name).encode() + b"\0" + path.read_bytes() + b"\0")
        except OSError:
            pass
        data = doc.data if doc.data is not None else {}
        if not isinstance(data, dict):
            errors.append(doc.error((), "a rules file must be a mapping with entities/keywords/rules"))
            continue
        try:
            parsed.append((doc, RulesFile.model_validate(data)))
        except ValidationError as exc:
            errors += errors_from_validation(exc, doc, known_names=_KNOWN)
    # whole-set checks: unique ids, known references
    seen: dict[str, tuple[str, YamlDocument, tuple]] = {}
    terms: dict[str, str] = {}
    for doc, rf in parsed:
        for section, items in (("entities", rf.entities), ("keywords", rf.keywords), ("rules", rf.rules)):
            for i, item in enumerate(items):
                kind = "rule" if section == "rules" else "term"
                key = f"{kind}:{item.id}"
                if key in seen:
                    other = seen[key]
                    line = other[1].locate(other[2])[0]
                    errors.append(doc.error((section, i, "id"),
                                            f"duplicate id {item.id!r} (first defined in {other[1].file}:{line})"))
                    continue
                seen[key] = (section, doc, (section, i, "id"))
                if kind == "term":
                    terms[item.id] = section
    for doc, rf in parsed:
        for i, rule in enumerate(rf.rules):
            refs: list[tuple[tuple, str]] = []
            for name in ("any", "all", "none"):
                refs += [((name, j), t) for j, t in enumerate(getattr(rule, name))]
            for j, n in enumerate(rule.near):
                refs += [(("near", j, "terms", k), t) for k, t in enumerate(n.terms)]
            for j, g in enumerate(rule.same_sentence):
                refs += [(("same_sentence", j, k), t) for k, t in enumerate(g)]
            for sub, term in refs:
                if term not in terms:
                    close = difflib.get_close_matches(term, list(terms), n=1, cutoff=0.5)
                    errors.append(doc.error(("rules", i) + sub, f"unknown entity or keyword set {term!r}",
                                            suggestion=close[0] if close else None))
            if not (rule.any or rule.all or rule.near or rule.same_sentence):
                errors.append(doc.error(("rules", i, "id"),
                                        "a rule needs at least one of any, all, near, same_sentence"))
    if errors:
        raise ConfigErrors(errors)
    entities = [e for _, rf in parsed for e in rf.entities]
    keywords = [k for _, rf in parsed for k in rf.keywords]
    rules = [r for _, rf in parsed for r in rf.rules]
    count = sum(len(e.aliases) + len(e.exclude) + sum(len(a.aliases) + len(a.near) for a in e.ambiguous)
                for e in entities) + sum(len(k.words) for k in keywords)
    if count > MAX_ALIASES:
        raise ConfigErrors([ConfigError(f"more than {MAX_ALIASES} aliases in total", file=str(files[0]))])
    return RuleSet(entities, keywords, rules, sources=[str(f) for f in files], fingerprint=digest.hexdigest()[:16])


# --------------------------------------------------------------------------- evaluation

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
