"""The YAML rule language: entities, keyword sets, vocabularies and rules, compiled once.

People edit these files, so loading never raises a traceback: every problem
becomes a ``ConfigError`` with file:line:column, the field and a "did you
mean" suggestion, and all of them are reported together as ``ConfigErrors``.
A ``RuleSet`` is immutable after ``load_rules``; the daemon swaps the whole
object on reload, so a bad file keeps the old rules running.

File shape (any file may hold any of the four lists)::

    vocabularies:                   # word lists the sense evidence below shares
      - id: place_heads
        words: [مدينة, بلدة, ريف, قرب, معبر, قضاء, محافظة]   # or one string: "مدينة، بلدة، ريف"
    kinds:                          # kinds of context: evidence ambiguous groups share by naming them
      - id: town
        for:
          - {vocabulary: [feminine_verbs], where: after, weight: 2}      # البوكمال شهدت
        against:
          - {vocabulary: [demonstratives], where: before, weight: 3}     # هذا العمر
          - {vocabulary: [speech_verbs], where: before, within: 3, weight: 3,
             requires: {words: [إن, أن], where: after}}                 # قال الشدادي إن
    entities:
      - id: omar_field
        labels: {ar: حقل العمر, en: al-Omar oil field}
        aliases: [حقل العمر, al-Omar oil field]
        ambiguous:                  # aliases whose sense is decided from their context
          - aliases: [العمر]
            kinds: [town]           # the evidence of these kinds comes after the group's own
            prior: 0                # the score before any evidence
            threshold: 1            # counted when prior + for - against >= threshold
            for:
              - {words: [حقل, نفط], where: around, within: 6, weight: 2}
              - {terms: [qasad], where: sentence, weight: 1}
            against:
              - {words: [متوسط, طول], where: before, weight: 3}
              - {vocabulary: [given_names], where: before, weight: 3}
            near: [قسد]             # older form: each a `for` word around `window`, weight 1
            window: 8
            quoted: false          # older form: «العمر» in quotes is `for` evidence, weight 1
        exclude: [متوسط العمر]      # phrases that are never this entity
        spelling_variants: true    # find informal spellings (القايم, البوكمل, دير لزور)
        missing_spaces: true       # find the name glued to the word before or after it
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

Evidence (one item of ``for`` or ``against``) is found when any of its
``words`` (a word, ``stem*`` for any ending, or several words for a phrase;
matched with proclitics and the usual suffixes), any word of its
``vocabulary`` lists, any of its ``terms`` (entities or keyword sets found
without ambiguity) or its ``shape`` is there, in the scope ``where`` says:
``before`` / ``after`` (the ``within`` words on that side, default 1),
``around`` (both sides, default 6), ``sentence`` or ``document``. Words do not
cross a sentence end. ``clitic: ل`` makes an item count only when the name
carries that preposition (للميادين); alone it is the evidence. ``requires``
makes an item count only when a second condition (words or a vocabulary in
its own scope) holds too: a speech verb before *and* إن after is a speaker.
Shapes: ``quoted`` (the alias in quotes), ``hashtag``,
``after_definite_masculine`` (right after a definite masculine word: الوضع
القائم reads as an adjective), ``exclusion_in_document`` (an ``exclude`` phrase
of this entity is in the document: the other sense is the topic),
``entity_in_document`` (the entity is counted elsewhere in the document,
through a plain alias or another occurrence whose sense was decided for it).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, get_args

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from monitor.text.matcher import match_form
from monitor.types import Duration, Severity

__all__ = ["FIELDS", "SHAPES", "SCOPES", "Labels", "Vocabulary", "Condition", "Evidence", "ContextKind", "Ambiguous",
           "Entity", "KeywordSet", "Near", "Rule", "RulesFile"]

FIELDS = ("title", "body")
FieldName = Literal["title", "body"]
_EVERY_FIELD: tuple[FieldName, ...] = ("title", "body")
_ID_RE = r"^[a-z][a-z0-9_]*$"


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


Shape = Literal["quoted", "hashtag", "after_definite_masculine", "exclusion_in_document", "entity_in_document"]
Scope = Literal["before", "after", "around", "sentence", "document"]
SHAPES: tuple[str, ...] = get_args(Shape)
SCOPES: tuple[str, ...] = get_args(Scope)
#: ``within`` when an evidence item does not say: the next word on one side, six words around.
DEFAULT_WITHIN = {"before": 1, "after": 1, "around": 6, "sentence": 0, "document": 0}


def _comma_list(value: object) -> object:
    """A long word list may be one string, the words separated by commas (, or ،): a YAML file
    of a few long strings parses ten times faster than one of a thousand list items."""
    if isinstance(value, str):
        return [w.strip() for w in re.split(r"[,،\n]", value) if w.strip()]
    return value


class Vocabulary(_Model):
    """A named word list that evidence items share (``vocabulary: [id]``)."""

    id: str = Field(pattern=_ID_RE)
    description: str = ""
    words: Annotated[list[AliasText], BeforeValidator(_comma_list)] = Field(min_length=1)


class _Scoped(_Model):
    """Where words are looked for: ``where`` and, for the word windows, how far (``within``)."""

    where: Scope = "around"
    within: int | None = Field(None, ge=1, le=200)

    @model_validator(mode="after")
    def _within_fits_where(self) -> _Scoped:
        if self.within is not None and self.where in ("sentence", "document"):
            raise ValueError(f"within does not apply to where: {self.where}")
        return self

    @property
    def span(self) -> int:
        """The number of words the scope reaches (0: the whole sentence or document)."""
        return self.within if self.within is not None else DEFAULT_WITHIN[self.where]


class Condition(_Scoped):
    """What an evidence item also needs (``requires``): words or a vocabulary in a scope."""

    words: list[AliasText] = []
    vocabulary: list[str] = []

    @model_validator(mode="after")
    def _something_to_find(self) -> Condition:
        if not (self.words or self.vocabulary):
            raise ValueError("a requirement needs words or a vocabulary")
        return self


class Evidence(_Scoped):
    """One piece of evidence about the sense of an ambiguous alias (module docstring)."""

    words: list[AliasText] = []
    vocabulary: list[str] = []
    terms: list[str] = []
    shape: Shape | None = None
    clitic: str | None = None
    weight: float = Field(1.0, gt=0, le=100)
    name: str = ""
    requires: Condition | None = None

    @model_validator(mode="after")
    def _something_to_find(self) -> Evidence:
        if not (self.words or self.vocabulary or self.terms or self.shape or self.clitic):
            raise ValueError("evidence needs words, vocabulary, terms, a shape or a clitic")
        return self


class ContextKind(_Model):
    """A named kind of context (``kinds:`` at the top of a file): evidence that every ambiguous
    group listing the kind shares, e.g. the grammar of a bare town name (a feminine verb next to
    it) or of a person's name (a masculine verb after it, قال X إن)."""

    id: str = Field(pattern=_ID_RE)
    description: str = ""
    for_: list[Evidence] = Field([], alias="for")
    against: list[Evidence] = []

    @model_validator(mode="after")
    def _has_evidence(self) -> ContextKind:
        if not (self.for_ or self.against):
            raise ValueError("a kind needs for or against evidence")
        return self


class Ambiguous(_Model):
    aliases: list[AliasText] = Field(min_length=1)
    kinds: list[str] = []
    near: list[AliasText] = []
    window: int = Field(8, ge=1, le=200)
    quoted: bool = False
    prior: float = Field(0.0, ge=-100, le=100)
    threshold: float = Field(1.0, ge=-100, le=100)
    for_: list[Evidence] = Field([], alias="for")
    against: list[Evidence] = []

    def evidence_for(self) -> list[Evidence]:
        """``for`` with the older ``near``/``quoted`` keys as the evidence items they stand for."""
        out = list(self.for_)
        if self.near:
            out.append(Evidence(words=self.near, where="around", within=self.window, weight=1.0, name="near"))
        if self.quoted:
            out.append(Evidence(shape="quoted", weight=1.0, name="quoted"))
        return out


class Entity(_Model):
    id: str = Field(pattern=_ID_RE)
    labels: Labels = Labels()
    kind: str | None = None
    aliases: list[AliasText] = []
    ambiguous: list[Ambiguous] = []
    exclude: list[AliasText] = []
    clitics: bool = True
    spelling_variants: bool = True
    missing_spaces: bool = True


class KeywordSet(_Model):
    id: str = Field(pattern=_ID_RE)
    description: str = ""
    words: list[AliasText] = Field(min_length=1)
    suffixes: bool | list[str] = False
    clitics: bool = True


class Near(_Model):
    terms: list[str] = Field(min_length=2)
    within: int = Field(10, ge=1, le=500)


class Rule(_Model):
    id: str = Field(pattern=_ID_RE)
    title: str = Field(min_length=1)
    description: str = ""
    severity: Severity = Severity.INFO
    channels: list[str] = []
    cooldown: Duration | None = None
    fields: list[FieldName] = Field(default_factory=lambda: list(_EVERY_FIELD), min_length=1)
    any: list[str] = []
    all: list[str] = []
    none: list[str] = []
    near: list[Near] = []
    same_sentence: list[list[str]] = []
    min_mentions: int = Field(1, ge=1)
    enabled: bool = True

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
    vocabularies: list[Vocabulary] = []
    kinds: list[ContextKind] = []
    entities: list[Entity] = []
    keywords: list[KeywordSet] = []
    rules: list[Rule] = []

