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


def _seed(db, n: int, channel: str) -> None:
    """``n`` old alerts, each with its story, item and sent message, as after months of service."""
    from monitor.ingest.pipeline import content_hash
    from monitor.state import alerts, items, outbox
    from monitor.state import stories as state_stories
    from monitor.types import Item

    rules = ("deir_ez_zor_front", "sdf_near_bukamal", "isis_in_deir_ez_zor", "omar_field_fighting")
    with db.transaction():
        for i in range(n):
            at = 1_000_000.0 + i
            story = state_stories.create(db, now=at, text_hash=f"old{i}", title="t", shingles=0)
            state_stories.add_item(db, story, item_key=f"guid:old{i}", feed="old", link=f"https://old.example/{i}",
                                   title="t", now=at, new_story=True)
            rule = rules[i % len(rules)]
            alert = alerts.insert(db, story_id=story, rule_id=rule, item_key=f"guid:old{i}", severity="info",
                                  payload=alerts.AlertPayload(rule_id=rule, rule_title=rule, feed="old", title="t"),
                                  now=at)
            assert alert is not None
            row = outbox.enqueue(db, alert_id=alert, channel=channel, kind="alert", not_before=at, now=at)
            assert row is not None
            db.execute("UPDATE outbox SET state = 'sent', sent_at = ? WHERE id = ?", (at, row))
            item = Item(feed="old", key=f"guid:old{i}", title="t", summary=f"old item {i}")
            items.record(db, key=item.key, feed="old", content_hash=content_hash(item), title="t",
                         link=None, story_id=story, rules=[rule], now=at)


def _steps_of_a_new_cycle(tmp_path: Path, history: int) -> int:
    articles = corpus_articles()
    items = [{"title": text.splitlines()[0][:100], "link": f"https://one.example/{stem}", "description": text}
             for stem, text in articles]
    tmp_path.mkdir(parents=True)
    with FeedServer() as server:
        config = _config(tmp_path, {"one": server.set("/one.xml", rss_feed(items))})
        db = open_state(tmp_path / "state.sqlite3")
        _seed(db, history, "console")
        db.close()
        daemon = Daemon(config, console=io.StringIO(), journald=False)
        daemon.setup()
        steps = [0]
        daemon.db.count_steps(lambda: steps.__setitem__(0, steps[0] + 1))  # type: ignore[attr-defined]
        asyncio.run(daemon.run_once(delivery_timeout=20))
    return steps[0]


def test_the_work_of_a_cycle_does_not_grow_with_the_alerts_stored(tmp_path):
    # SQLite VM instructions (in hundreds) of the same cycle, five new matching items polled and
    # delivered, on a state holding 100 and then 3,000 earlier alerts: a query that walks the
    # history shows up as work growing 30-fold; an indexed one barely moves.
    small = _steps_of_a_new_cycle(tmp_path / "small", 100)
    large = _steps_of_a_new_cycle(tmp_path / "large", 3000)
    assert small > 100
    assert large < 1.5 * small, f"{small} -> {large} (x{large / small:.2f})"
