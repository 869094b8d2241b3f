"""The CPU half of handling a poll's new items: match the rules, fingerprint, sign.

For each new or changed item: the rule evaluation (match stage) and, for an
item that matched a rule, its ``DedupKey``: canonical link, sentence fingerprint
and MinHash values, and the sentences the poll's other items repeat (site
furniture, learned from the whole batch): the pure half of the dedup stage.
None of it reads or writes the state database, so ``monitor.ingest.workers``
runs it in worker processes next to the parse; the event loop then only
decides and records, inside the poll's one transaction
(``monitor.ingest.pipeline``). Measured on a cycle of 1,000 changed feeds
(bench/bench_poll.py), this was ~10 ms of CPU per feed that a thread in the
daemon's process ran under the GIL, slowing the loop's SQLite and socket calls.

An ``AnalysisContext`` is everything a worker needs, sent once per worker
process (not once per job): the rule set is ~160 KB pickled.
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.rules import RuleMatch, RuleSet
from monitor.stories.fingerprint import Permutations
from monitor.stories.key import DedupKey, dedup_key, dedup_keys
from monitor.stories.settings import DedupSettings
from monitor.types import Item


@dataclass(frozen=True, eq=False)
class AnalysisContext:
    """The rules and dedup parameters one poll's analysis uses (compared by identity:
    a reload makes a new one)."""

    ruleset: RuleSet
    dedup: DedupSettings
    #: The MinHash permutations (``StoryIndex.permutations``).
    permutations: Permutations


@dataclass(frozen=True)
class ItemAnalysis:
    """What the pipeline's transaction needs to know about one new or changed item.

    Only the rule matches, not the whole ``Evaluation`` (every hit of every
    entity): it crosses a process boundary, and pickling the rest cost more
    than the matching of a short item.
    """

    matches: list[RuleMatch]
    #: Only for an item that matched a rule (only those are folded into stories).
    dedup: DedupKey | None = None


def analyze_item(item: Item, context: AnalysisContext) -> ItemAnalysis:
    """One item alone (its key learns nothing from other items of its poll)."""
    matches = context.ruleset.evaluate(title=item.title, body=item.summary).matches
    if not matches:
        return ItemAnalysis(matches)
    return ItemAnalysis(matches, dedup_key(item, context.dedup, context.permutations))


def analyze_items(items: list[Item], context: AnalysisContext) -> list[ItemAnalysis]:
    """Match each item and key those that matched, with the furniture the items of this one
    poll repeat (pure: safe in a thread or another process)."""
    matches = [context.ruleset.evaluate(title=item.title, body=item.summary).matches for item in items]
    keys = dedup_keys(items, [bool(m) for m in matches], context.dedup, context.permutations)
    return [ItemAnalysis(m, key) for m, key in zip(matches, keys, strict=True)]
