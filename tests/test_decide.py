"""The item decision as a table: what the state remembers, what the item is now -> what the poll does.

``decide_item`` reads no database and no clock, so every rule of "when does an
item alert" is a row here (reader's ``Decider`` tests are the model).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from monitor.ingest.analysis import ItemAnalysis
from monitor.ingest.decide import AlertWindow, ItemStatus, decide_item
from monitor.rules import RuleMatch
from monitor.state.items import SeenItem
from monitor.types import Item, Severity

NOW = 1_800_000_000.0
DAY = 86400.0


def match(rule: str) -> RuleMatch:
    return RuleMatch(rule, rule, "", Severity.INFO, (), None, ())


def item(published: float | None = NOW - 3600) -> Item:
    when = datetime.fromtimestamp(published, UTC) if published is not None else None
    return Item(feed="f", key="guid:1", title="عنوان", summary="نص", published=when)


# (what it shows, remembered hash and rules or None, hash now, rules matching now, window, published)
#   -> (status, fresh rules, already sent, rules remembered)
CASES = [
    ("a new item alerts for every rule it matches",
     None, "h1", ["a", "b"], AlertWindow(), NOW - 3600,
     (ItemStatus.NEW, ["a", "b"], 0, ["a", "b"])),
    ("a new item that matches nothing is only remembered",
     None, "h1", [], AlertWindow(), NOW - 3600,
     (ItemStatus.NEW, [], 0, [])),
    ("an unchanged item is seen again, nothing else",
     ("h1", ["a"]), "h1", None, AlertWindow(), NOW - 3600,
     (ItemStatus.UNCHANGED, [], 1, ["a"])),
    ("an edit alerts only for the rules it did not match before",
     ("h1", ["a"]), "h2", ["a", "b"], AlertWindow(), NOW - 3600,
     (ItemStatus.CHANGED, ["b"], 1, ["a", "b"])),
    ("a rule that stops matching after an edit stays remembered (an edit back does not alert again)",
     ("h1", ["a", "b"]), "h2", ["a"], AlertWindow(), NOW - 3600,
     (ItemStatus.CHANGED, [], 1, ["a", "b"])),
    ("an item older than max_item_age never alerts, but its matches are remembered",
     None, "h1", ["a"], AlertWindow.of(NOW, max_item_age=DAY), NOW - 2 * DAY,
     (ItemStatus.NEW, [], 0, ["a"])),
    ("an undated item is recent enough: dropping it could hide news",
     None, "h1", ["a"], AlertWindow.of(NOW, max_item_age=DAY), None,
     (ItemStatus.NEW, ["a"], 0, ["a"])),
    ("first poll, recent: the backlog is marked seen",
     None, "h1", ["a"], AlertWindow.of(NOW, max_item_age=None, first_poll="recent", first_poll_window=DAY),
     NOW - 3 * DAY, (ItemStatus.NEW, [], 0, ["a"])),
    ("first poll, recent: an item of the last day alerts",
     None, "h1", ["a"], AlertWindow.of(NOW, max_item_age=None, first_poll="recent", first_poll_window=DAY),
     NOW - 3600, (ItemStatus.NEW, ["a"], 0, ["a"])),
    ("first poll, recent: max_item_age still applies when it is the shorter",
     None, "h1", ["a"], AlertWindow.of(NOW, max_item_age=600.0, first_poll="recent", first_poll_window=DAY),
     NOW - 3600, (ItemStatus.NEW, [], 0, ["a"])),
    ("first poll, all: the whole backlog alerts",
     None, "h1", ["a"], AlertWindow.of(NOW, max_item_age=None, first_poll="all", first_poll_window=DAY),
     NOW - 300 * DAY, (ItemStatus.NEW, ["a"], 0, ["a"])),
    ("first poll, none: nothing alerts, not even an undated item",
     None, "h1", ["a"], AlertWindow.of(NOW, max_item_age=None, first_poll="none", first_poll_window=DAY),
     None, (ItemStatus.NEW, [], 0, ["a"])),
]


@pytest.mark.parametrize(("seen", "digest", "now_rules", "window", "published", "expected"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_decide_item(seen, digest, now_rules, window, published, expected):
    remembered = SeenItem(seen[0], tuple(seen[1])) if seen else None
    analysis = ItemAnalysis([match(r) for r in now_rules]) if now_rules is not None else None
    intent = decide_item(item(published), digest, remembered, analysis, window=window)
    status, fresh, already_sent, rules = expected
    assert intent.status is status
    assert [m.rule_id for m in intent.fresh] == fresh
    assert intent.already_sent == already_sent
    assert list(intent.rules) == rules


def test_a_new_or_changed_item_needs_its_analysis():
    with pytest.raises(ValueError, match="needs its analysis"):
        decide_item(item(), "h2", SeenItem("h1", ()), None, window=AlertWindow())
