"""Rules: the YAML rule language, loaded, checked and evaluated.

    evaluate.py   the rule schema, ``load_rules`` and ``RuleSet.evaluate`` (pure, thread-safe)

May import: ``monitor.text`` (the matcher), ``monitor.errors``, ``monitor.yamlfile``.
"""

from monitor.rules.evaluate import Evaluation, Hit, RuleMatch, RuleSet, load_rules

__all__ = ["Evaluation", "Hit", "RuleMatch", "RuleSet", "load_rules"]
