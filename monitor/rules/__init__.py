"""Rules: the YAML rule language, loaded, checked and evaluated.

    schema.py     the models of a rules file (vocabularies, entities, keyword sets, rules)
    load.py       ``load_rules``: read, validate, cross-check, compile
    senses.py     sense decisions for ambiguous aliases: evidence, score, threshold (pure)
    evaluate.py   ``RuleSet.evaluate``: hits per entity, the rules they fire (pure)

File shape and field meanings: the docstring of ``schema``.
May import: ``monitor.text`` (the matcher), ``monitor.types``, ``monitor.errors``, ``monitor.yamlfile``.
"""

from monitor.rules.evaluate import Decision, Evaluation, Hit, RuleMatch, RuleSet
from monitor.rules.load import load_rules, load_rules_and_documents

__all__ = ["Decision", "Evaluation", "Hit", "RuleMatch", "RuleSet", "load_rules", "load_rules_and_documents"]
