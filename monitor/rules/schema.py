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

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from monitor.text.matcher import match_form
from monitor.types import Duration, Severity

__all__ = ["FIELDS", "Labels", "Ambiguous", "Entity", "KeywordSet", "Near", "Rule", "RulesFile"]

FIELDS = ("title", "body")
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


class Rule(_Model):
    id: str = Field(pattern=_ID_RE)
    title: str = Field(min_length=1)
    description: str = ""
    severity: Severity = Severity.INFO
    channels: list[str] = []
    cooldown: Duration | None = None
    fields: list[Literal["title", "body"]] = Field(default_factory=lambda: list(FIELDS), min_length=1)
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
    entities: list[Entity] = []
    keywords: list[KeywordSet] = []
    rules: list[Rule] = []

