"""What a poll should do with each item: a pure function of what is known.

Like reader's ``Decider``, this module touches no database, no network and no
clock of its own: it is given the item, the hash of its normalized text, what
the state remembers of it (``SeenItem`` or None) and, for a new or changed
item, its analysis, and returns an ``ItemIntent``. The pipeline then records
the intent inside the poll's transaction. The rules it encodes:

* an item whose normalized text did not change is only marked seen again;
* an edit alerts only for rules it did not match before;
* an item outside the poll's ``AlertWindow`` never alerts: older than
  ``max_item_age``, or, on a feed's first poll, older than the first-poll
  window (the backlog a new feed carries is marked seen, not sent);
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

__all__ = ["ItemStatus", "ItemIntent", "AlertWindow", "decide_item"]


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


@dataclass(frozen=True)
class AlertWindow:
    """Which items of one poll may alert: those published at or after ``since`` (None: any
    date), or none at all (``nothing``). An undated item counts as recent: dropping it
    could hide news."""

    since: float | None = None
    nothing: bool = False

    def admits(self, item: Item) -> bool:
        if self.nothing:
            return False
        if self.since is None or item.published is None:
            return True
        return item.published.timestamp() >= self.since

    @classmethod
    def of(cls, now: float, *, max_item_age: float | None, first_poll: str | None = None,
           first_poll_window: float | None = None) -> AlertWindow:
        """The window of a poll at ``now``; ``first_poll`` is given on a feed's first poll only."""
        since = now - max_item_age if max_item_age is not None else None
        if first_poll == "none":
            return cls(since, nothing=True)
        if first_poll == "recent" and first_poll_window is not None:
            since = max(since or now - first_poll_window, now - first_poll_window)
        return cls(since)


def status_of(digest: str, seen: SeenItem | None) -> ItemStatus:
    if seen is None:
        return ItemStatus.NEW
    return ItemStatus.UNCHANGED if seen.content_hash == digest else ItemStatus.CHANGED


def decide_item(item: Item, digest: str, seen: SeenItem | None, analysis: ItemAnalysis | None, *,
                window: AlertWindow) -> ItemIntent:
    """The intent for ``item``; ``analysis`` is required unless the item is unchanged.

    A match outside the window is remembered as already seen, so a later edit of the
    item does not alert for it either.
    """
    status = status_of(digest, seen)
    previous = seen.rules if seen is not None else ()
    if status is ItemStatus.UNCHANGED:
        return ItemIntent(status, already_sent=len(previous), rules=previous)
    if analysis is None:
        raise ValueError(f"item {item.key}: a new or changed item needs its analysis")
    matches = analysis.matches
    rules = tuple(sorted(set(previous) | {m.rule_id for m in matches}))
    if not window.admits(item):
        return ItemIntent(status, rules=rules)
    fresh = tuple(m for m in matches if m.rule_id not in previous)
    return ItemIntent(status, fresh, len(matches) - len(fresh), rules)
