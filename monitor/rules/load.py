"""Loading rule files: read, validate and cross-check, then compile one ``RuleSet``.

People edit these files, so loading never raises a traceback: every problem
becomes a ``ConfigError`` with file:line:column, the field and a "did you
mean" suggestion, and all of them are reported together as ``ConfigErrors``.
A ``RuleSet`` is immutable; the daemon swaps the whole object on reload, so a
bad file keeps the old rules running.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path

from pydantic import ValidationError

from monitor.errors import ConfigError, ConfigErrors
from monitor.rules.evaluate import RuleSet
from monitor.rules.schema import ContextKind, Entity, Evidence, KeywordSet, Rule, RulesFile, Vocabulary
from monitor.yamlfile import (
    Path_,
    YamlDocument,
    errors_from_validation,
    load_yaml,
    model_field_names,
)

__all__ = ["load_rules", "load_rules_and_documents", "MAX_ALIASES"]

MAX_ALIASES = 200_000
_KNOWN = model_field_names(RulesFile)


def _expand(paths: Iterable[Path | str]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            out += sorted(q for q in p.iterdir() if q.suffix in (".yaml", ".yml") and q.is_file())
        else:
            out.append(p)
    return out


def load_rules(paths: Iterable[Path | str]) -> RuleSet:
    """Load, validate and compile rule files (a directory means every *.yaml/*.yml in it).

    Raises ``ConfigErrors`` listing every problem found; never anything else
    for bad input.
    """
    return load_rules_and_documents(paths)[0]


def load_rules_and_documents(paths: Iterable[Path | str]) -> tuple[RuleSet, list[YamlDocument]]:
    """``load_rules``, and the parsed files it compiled (checks that locate errors in them, such as
    ``monitor.service.checks``, need not parse them again)."""
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
    seen: dict[str, tuple[YamlDocument, Path_]] = {}
    terms: dict[str, str] = {}
    vocabularies: set[str] = set()
    kinds: set[str] = set()
    for doc, rf in parsed:
        sections: tuple[tuple[str, Sequence[Vocabulary | ContextKind | Entity | KeywordSet | Rule]], ...] = (
            ("vocabularies", rf.vocabularies), ("kinds", rf.kinds), ("entities", rf.entities),
            ("keywords", rf.keywords), ("rules", rf.rules))
        for section, items in sections:
            for i, item in enumerate(items):
                kind = {"rules": "rule", "vocabularies": "vocabulary", "kinds": "kind"}.get(section, "term")
                key = f"{kind}:{item.id}"
                if key in seen:
                    other_doc, other_path = seen[key]
                    line = other_doc.locate(other_path)[0]
                    errors.append(doc.error((section, i, "id"),
                                            f"duplicate id {item.id!r} (first defined in {other_doc.file}:{line})"))
                    continue
                seen[key] = (doc, (section, i, "id"))
                if kind == "term":
                    terms[item.id] = section
                elif kind == "vocabulary":
                    vocabularies.add(item.id)
                elif kind == "kind":
                    kinds.add(item.id)
    for doc, rf in parsed:
        for i, rule in enumerate(rf.rules):
            refs: list[tuple[Path_, str]] = []
            for name in ("any", "all", "none"):
                refs += [((name, j), t) for j, t in enumerate(getattr(rule, name))]
            for j, n in enumerate(rule.near):
                refs += [(("near", j, "terms", k), t) for k, t in enumerate(n.terms)]
            for j, g in enumerate(rule.same_sentence):
                refs += [(("same_sentence", j, k), t) for k, t in enumerate(g)]
            for sub, term in refs:
                if term not in terms:
                    errors.append(_unknown(doc, ("rules", i) + sub, "entity or keyword set", term, terms))
            if not (rule.any or rule.all or rule.near or rule.same_sentence):
                errors.append(doc.error(("rules", i, "id"),
                                        "a rule needs at least one of any, all, near, same_sentence"))
        groups: list[tuple[Path_, list[Evidence], list[Evidence]]] = [
            (("kinds", i), kind_.for_, kind_.against) for i, kind_ in enumerate(rf.kinds)]
        for i, entity in enumerate(rf.entities):
            for a_index, amb in enumerate(entity.ambiguous):
                groups.append((("entities", i, "ambiguous", a_index), amb.for_, amb.against))
                for k_index, name in enumerate(amb.kinds):
                    if name not in kinds:
                        errors.append(_unknown(doc, ("entities", i, "ambiguous", a_index, "kinds", k_index), "kind",
                                               name, kinds))
        for at, for_, against in groups:
            for side, evidence_list in (("for", for_), ("against", against)):
                for e_index, evidence in enumerate(evidence_list):
                    where: Path_ = at + (side, e_index)
                    for t_index, term in enumerate(evidence.terms):
                        if term not in terms:
                            errors.append(_unknown(doc, where + ("terms", t_index), "entity or keyword set",
                                                   term, terms))
                    vocabulary_refs = [(where + ("vocabulary", v), name) for v, name in enumerate(evidence.vocabulary)]
                    if evidence.requires is not None:
                        vocabulary_refs += [(where + ("requires", "vocabulary", v), name)
                                            for v, name in enumerate(evidence.requires.vocabulary)]
                    for ref, vocabulary in vocabulary_refs:
                        if vocabulary not in vocabularies:
                            errors.append(_unknown(doc, ref, "vocabulary", vocabulary, vocabularies))
    if errors:
        raise ConfigErrors(errors)
    vocabulary_list = [v for _, rf in parsed for v in rf.vocabularies]
    kind_list = [k for _, rf in parsed for k in rf.kinds]
    entities = [e for _, rf in parsed for e in rf.entities]
    keywords = [k for _, rf in parsed for k in rf.keywords]
    rules = [r for _, rf in parsed for r in rf.rules]
    count = sum(len(e.aliases) + len(e.exclude) + sum(len(a.aliases) for a in e.ambiguous) for e in entities)
    count += sum(len(k.words) for k in keywords)
    if count > MAX_ALIASES:
        raise ConfigErrors([ConfigError(f"more than {MAX_ALIASES} aliases in total", file=str(files[0]))])
    ruleset = RuleSet(entities, keywords, rules, vocabularies=vocabulary_list, kinds=kind_list,
                      sources=[str(f) for f in files], fingerprint=digest.hexdigest()[:16])
    return ruleset, [doc for doc, _ in parsed]


def _unknown(doc: YamlDocument, path: Path_, what: str, name: str, known: Iterable[str]) -> ConfigError:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.5)
    return doc.error(path, f"unknown {what} {name!r}", suggestion=close[0] if close else None)
