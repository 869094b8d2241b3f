"""Checks that need both a loaded rule set and its files: run by ``monitor check``,
at start-up and on every reload (``load_everything``).

An alias that can never match is a silent hole: the rules load, ``check``
says ok, and the mention it was written for never alerts (say an alias that
the entity's own ``exclude`` also lists). The test is the rule set itself:
an alias must at least be found in its own text. It uses only the public
``RuleSet.evaluate``; ambiguous aliases (they count only with context) are
not tested.
"""

from __future__ import annotations

from typing import Any

from monitor.errors import ConfigError
from monitor.rules import RuleSet
from monitor.yamlfile import YamlDocument

__all__ = ["unmatchable_aliases"]


def unmatchable_aliases(ruleset: RuleSet, documents: list[YamlDocument]) -> list[ConfigError]:
    """One located error per entity alias or keyword word that does not match its own text;
    ``documents`` are the parsed files ``ruleset`` was compiled from (``load_rules_and_documents``)."""
    errors: list[ConfigError] = []
    for doc in documents:
        data = doc.data if isinstance(doc.data, dict) else {}
        errors += _check_section(ruleset, doc, data, "entities", "aliases", keyword=False)
        errors += _check_section(ruleset, doc, data, "keywords", "words", keyword=True)
    return errors


def _check_section(ruleset: RuleSet, doc: YamlDocument, data: dict[str, Any], section: str, field: str, *,
                   keyword: bool) -> list[ConfigError]:
    errors = []
    for i, term in enumerate(data.get(section) or []):
        if not isinstance(term, dict) or not isinstance(term.get(field), list):
            continue
        term_id = term.get("id")
        for j, alias in enumerate(term[field]):
            if not isinstance(alias, str):
                continue
            found = ruleset.evaluate(title=alias)
            if term_id not in (found.keywords if keyword else found.entities):
                errors.append(doc.error((section, i, field, j),
                                        f"{alias!r} can never match {term_id}: not even its own text is found "
                                        "(is it also in the entity's exclude?)"))
    return errors
