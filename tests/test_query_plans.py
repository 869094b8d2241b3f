"""Per-item cost stays flat as history grows: no query of the poll or delivery path scans a table.

The test records every statement a realistic cycle runs on SQLite (new items,
a copy from another outlet, an edit, an unchanged re-poll, an identical body,
delivery of every message) and asks SQLite's planner for each one's plan. A
``SCAN`` of one of the tables that grow with history (every item, story, alert
and message ever stored) means that statement costs more with every alert,
so the test fails and names it. Maintenance (pruning) and the CLI's reports
are not on these paths and are not checked.
"""

from __future__ import annotations

import asyncio
import io
import re
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, FeedServer, corpus_articles, rss_feed

from monitor.service.daemon import Daemon
from monitor.state import open_state

GROWING = ("items", "alerts", "outbox", "stories", "story_items")


def _table_names(sql: str) -> dict[str, str]:
    """Alias (or name) -> table, from the FROM and JOIN clauses: plans name a table by its alias."""
    names = {}
    for table, alias in re.findall(r"(?i)\b(?:FROM|JOIN|UPDATE|INTO)\s+(\w+)(?:\s+(?:AS\s+)?(?!WHERE|ON|SET|JOIN|LEFT|"
                                   r"ORDER|GROUP|LIMIT|VALUES|USING)(\w+))?", sql):
        names[table] = table
        if alias:
            names[alias] = table
    return names


def _config(tmp_path: Path, feeds: dict[str, str]) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({
        "state": str(tmp_path / "state.sqlite3"), "rules": [str(ROOT / "rules")],
        "feeds": [{"name": n, "url": u} for n, u in feeds.items()],
        "channels": {"console": {"url": "console://"}, "second": {"url": "console://"}},
        "routing": {"followup_after": 0},
        "fetch": {"allow_private_addresses": True},
    }, allow_unicode=True), encoding="utf-8")
    return path


def _cycle(config: Path, statements: list[str]) -> None:
    daemon = Daemon(config, console=io.StringIO(), journald=False)
    daemon.setup()
    daemon.db.trace(statements.append)  # type: ignore[attr-defined]
    asyncio.run(daemon.run_once(delivery_timeout=20))


@pytest.mark.xfail(strict=True, reason="outbox.last_for_rule joins outbox and alerts by rule with no index")
def test_no_query_of_the_poll_and_delivery_paths_scans_a_growing_table(tmp_path):
    articles = corpus_articles()
    items = [{"title": text.splitlines()[0][:100], "link": f"https://one.example/{stem}", "description": text}
             for stem, text in articles]
    statements: list[str] = []
    with FeedServer() as server:
        feeds = {"one": server.set("/one.xml", rss_feed(items)),
                 "two": server.set("/two.xml", rss_feed([{**items[0], "link": "https://two.example/copy",
                                                          "title": "عنوان آخر"}]))}
        config = _config(tmp_path, feeds)
        _cycle(config, statements)  # new items, a copy from another outlet, deliveries
        edited = [{**items[1], "description": items[1]["description"] + " واندلعت اشتباكات في حقل العمر."},
                  *items[2:]]
        server.set("/one.xml", rss_feed(edited))
        _cycle(config, statements)  # an edit, unchanged items, deliveries of the new rule
        _cycle(config, statements)  # 304s
    db = open_state(tmp_path / "state.sqlite3")
    scans: dict[str, str] = {}
    try:
        for sql in dict.fromkeys(s.strip() for s in statements):
            if not re.match(r"(?is)^(SELECT|INSERT|UPDATE|DELETE|WITH)\b", sql):
                continue
            plan = " | ".join(row["detail"] for row in db.all("EXPLAIN QUERY PLAN " + sql))
            names = _table_names(sql)
            bad = [names.get(name, name) for name in re.findall(r"\bSCAN (\w+)", plan)
                   if names.get(name, name) in GROWING]
            if bad:
                shape = re.sub(r"'[^']*'|\b\d+(?:\.\d+)?\b", "?", sql)  # one line per statement, not per value
                scans[shape[:300]] = plan
    finally:
        db.close()
    assert len(statements) > 50, "the cycle ran through the state"
    assert not scans, "full scans on the poll/delivery path:\n" + "\n".join(f"- {s}\n    {p}" for s, p in scans.items())
