"""What a poll should do with each item: a pure function of what is known.

Like reader's ``Decider``, this module touches no database, no network and no
clock of its own: it is given the item, the hash of its normalized text, what
the state remembers of it (``SeenItem`` or None) and, for a new or changed
item, its analysis, and returns an ``ItemIntent``. The pipeline then records
the intent inside the poll's transaction. The rules it encodes:

* an item whose normalized text did not change is only marked seen again;
* an edit alerts only for rules it did not match before;
* an item published longer ago than ``max_item_age`` never alerts;
* the rules remembered for an item only grow (a rule that stops matching
  after an edit is kept, so a later edit back does not alert again).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from monitor.ingest.analysis import ItemAnalysis
from monitor.rules import RuleMatch
from monitor.state.items import SeenItem
from monitor.types import Item

__all__ = ["ItemStatus", "ItemIntent", "decide_item", "recent_enough"]


class ItemStatus(enum.StrEnum):
    NEW = "new"
    CHANGED = "changed"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class ItemIntent:
    """The decision for one item.

    ``fresh`` are the matches to alert for (new rules of this item, recent
    enough); ``already_sent`` counts matches that alerted before; ``rules`` is
    what the item's seen mark should remember.
    """

    status: ItemStatus
    fresh: tuple[RuleMatch, ...] = ()
    already_sent: int = 0
    rules: tuple[str, ...] = ()


def recent_enough(item: Item, now: float, max_item_age: float | None) -> bool:
    """An undated item is always recent enough: dropping it could hide news."""
    if max_item_age is None or item.published is None:
        return True
    return item.published.timestamp() >= now - max_item_age


def status_of(digest: str, seen: SeenItem | None) -> ItemStatus:
    if seen is None:
        return ItemStatus.NEW
    return ItemStatus.UNCHANGED if seen.content_hash == digest else ItemStatus.CHANGED


def decide_item(item: Item, digest: str, seen: SeenItem | None, analysis: ItemAnalysis | None, *,
                now: float, max_item_age: float | None) -> ItemIntent:
    """The intent for ``item``; ``analysis`` is required unless the item is unchanged."""
    status = status_of(digest, seen)
    previous = seen.rules if seen is not None else ()
    if status is ItemStatus.UNCHANGED:
        return ItemIntent(status, already_sent=len(previous), rules=previous)
    if analysis is None:
        raise ValueError(f"item {item.key}: a new or changed item needs its analysis")
    matches = analysis.matches if recent_enough(item, now, max_item_age) else ()
    fresh = tuple(m for m in matches if m.rule_id not in previous)
    rules = tuple(sorted(set(previous) | {m.rule_id for m in matches}))
    return ItemIntent(status, fresh, len(matches) - len(fresh), rules)
