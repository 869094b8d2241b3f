"""One feed poll through every stage, in-process, against a real loopback HTTP
server and a real SQLite file: what gets alerted, what never re-alerts, and
what survives a failed commit.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
import yaml
from conftest import FeedServer, corpus_articles, rss_feed
from feedfarm import feedfarm  # noqa: F401  (fixture)

from monitor.config import load_config
from monitor.feeds.fetch import Fetcher
from monitor.ingest import pipeline as pipeline_module
from monitor.ingest import workers as workers_module
from monitor.ingest.analysis import AnalysisContext
from monitor.ingest.pipeline import Pipeline
from monitor.ingest.workers import WorkerPool
from monitor.rules import load_rules
from monitor.state import open_state
from monitor.state.db import StateError
from monitor.stories.index import StoryIndex

ROOT = Path(__file__).resolve().parent.parent

SDF_BUKAMAL = {"title": "قسد تتقدم نحو البوكمال",
               "link": "https://a.example/news/1",
               "description": "قالت قوات سوريا الديمقراطية إنها تتقدم نحو مدينة البوكمال على الحدود مع العراق."}
UNRELATED = {"title": "أمطار غزيرة على الساحل", "link": "https://a.example/news/2",
             "description": "توقعت الأرصاد الجوية أمطارا غزيرة."}


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make(tmp_path: Path, feeds: dict[str, str], rules_dir: Path | None = None, clock: Clock | None = None,
         workers: int = 0, **feed_options):
    tmp_path.mkdir(parents=True, exist_ok=True)
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump({
        "state_path": str(tmp_path / "state.sqlite3"),
        "rules": [str(rules_dir or ROOT / "rules")],
        "feeds": [{"name": n, "url": u, **feed_options} for n, u in feeds.items()],
        "channels": {"console": {"url": "console://"}},
        # The pipeline's clock is in 2027, a month after the items' date: not a first-contact backlog.
        "defaults": {"first_poll": "all"},
        "fetch": {"allow_private_addresses": True},  # feeds on 127.0.0.1
    }, allow_unicode=True), encoding="utf-8")
    config = load_config(config_path, environ={})
    conn = open_state(config.state)
    stories = StoryIndex(config.model.dedup)
    stories.load(conn, 0)
    fetcher = Fetcher(config.model.fetch)
    # workers > 0: parse and match in worker processes, as the daemon does with 20+ feeds
    pool = WorkerPool(workers)
    _POOLS.append(pool)
    context = AnalysisContext(load_rules(config.rules), stories.settings, stories.permutations)
    pool.use(context)
    return Pipeline(config, conn, context, fetcher, stories, pool, clock=clock or Clock())


_LOOPS: dict[int, tuple[asyncio.AbstractEventLoop, Fetcher]] = {}
_POOLS: list[WorkerPool] = []


@pytest.fixture(autouse=True)
def _close_loops():
    yield
    while _LOOPS:
        loop, fetcher = _LOOPS.popitem()[1]
        loop.run_until_complete(fetcher.aclose())  # its connections belong to this loop
        loop.close()
    while _POOLS:
        _POOLS.pop().close()


def poll(p: Pipeline, name: str = "a"):
    """Poll on the pipeline's own event loop (its HTTP client's connections belong to it)."""
    if id(p.fetcher) not in _LOOPS:  # not setdefault: its argument would make (and leak) a loop per call
        _LOOPS[id(p.fetcher)] = (asyncio.new_event_loop(), p.fetcher)
    loop = _LOOPS[id(p.fetcher)][0]
    feed = next(f for f in p.config.feeds if f.name == name)
    return loop.run_until_complete(p.poll(feed))


def reloaded(p: Pipeline, ruleset) -> Pipeline:
    """What the daemon does on a reload: a new pipeline with the new rules over the same parts."""
    context = AnalysisContext(ruleset, p.stories.settings, p.stories.permutations)
    p.workers.use(context)
    return Pipeline(p.config, p.db, context, p.fetcher, p.stories, p.workers, clock=p.clock)


def alerts(p: Pipeline) -> list[sqlite3.Row]:
    return p.db.execute("SELECT a.*, o.channel FROM alerts a JOIN outbox o ON o.alert_id = a.id "
                          "ORDER BY a.id").fetchall()


@pytest.mark.parametrize("workers", [0, 2], ids=["thread", "processes"])
def test_new_items_alert_once_and_unrelated_items_never(tmp_path, feed_server: FeedServer, workers):
    url = feed_server.set("/a.xml", rss_feed([SDF_BUKAMAL, UNRELATED]))
    p = make(tmp_path, {"a": url}, workers=workers)
    first = poll(p)
    assert (first.status, first.items, first.new_items) == ("ok", 2, 2)
    rows = alerts(p)
    assert rows and {r["item_key"] for r in rows} == {f"guid:{SDF_BUKAMAL['link']}"}
    assert "sdf_near_bukamal" in {r["rule_id"] for r in rows}
    assert first.alerts_new == len(rows)

    second = poll(p)
    assert second.status == "not_modified"
    assert len(alerts(p)) == len(rows)


def test_server_that_ignores_validators_causes_no_duplicates(tmp_path, feed_server):
    url = feed_server.set("/a.xml", rss_feed([SDF_BUKAMAL]))
    p = make(tmp_path, {"a": url})
    poll(p)
    count = len(alerts(p))
    feed_server.routes["/a.xml"]["headers"]["ETag"] = '"changes-every-time"'  # and never 304s
    for _ in range(3):
        feed_server.set("/a.xml", rss_feed([SDF_BUKAMAL]), headers={"Cache-Control": "no-cache"})
        outcome = poll(p)
        assert outcome.status in ("ok", "not_modified")
    assert len(alerts(p)) == count


def _count_parses(monkeypatch) -> list[int]:
    calls = [0]
    real = workers_module.parse_feed  # a pool without processes parses in a thread through this name

    def counting(*args, **kwargs):
        calls[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(workers_module, "parse_feed", counting)
    return calls


def test_an_identical_body_is_not_parsed_again_but_its_items_stay_alive(tmp_path, feedfarm, monkeypatch):
    """A server without validators sends the same bytes every poll: no parse, no matching,
    but the items' last_seen moves on (housekeeping prunes by it), and every 6 hours the
    body is processed in full anyway."""
    clock = Clock()
    url = feedfarm.add("/a.xml", rss_feed([SDF_BUKAMAL, UNRELATED]).encode())  # no ETag, no Last-Modified
    p = make(tmp_path, {"a": url}, clock=clock)
    parses = _count_parses(monkeypatch)
    first = poll(p)
    assert (first.status, first.new_items, parses[0]) == ("ok", 2, 1)
    count = len(alerts(p))

    clock.now += 600
    second = poll(p)
    assert second.status == "not_modified" and parses[0] == 1
    assert [r[0] for r in p.db.execute("SELECT last_seen FROM items")] == [clock.now, clock.now]
    assert feedfarm.hits("/a.xml") == 2

    clock.now += 6 * 3600
    third = poll(p)
    assert (third.status, third.new_items, parses[0]) == ("ok", 0, 2)
    assert len(alerts(p)) == count

    feedfarm.add("/a.xml", rss_feed([SDF_BUKAMAL, UNRELATED, {**UNRELATED, "link": "https://a.example/n/3",
                                                                "title": "خبر ثالث"}]).encode())
    clock.now += 60
    fourth = poll(p)
    assert (fourth.status, fourth.new_items, parses[0]) == ("ok", 1, 3)


def test_a_new_encoding_override_reparses_an_identical_body(tmp_path, feedfarm, monkeypatch):
    url = feedfarm.add("/a.xml", rss_feed([SDF_BUKAMAL]).encode())
    parses = _count_parses(monkeypatch)
    poll(make(tmp_path, {"a": url}))
    assert parses[0] == 1
    p = make(tmp_path, {"a": url}, encoding="utf-8")  # the user fixes the feed's charset: parse again
    assert poll(p).status == "ok" and parses[0] == 2


def test_a_lying_304_delays_an_item_but_never_hides_it(tmp_path, feed_server):
    clock = Clock()
    url = feed_server.set("/a.xml", rss_feed([UNRELATED]))
    p = make(tmp_path, {"a": url}, clock=clock)
    poll(p)
    # The content changes, but the server keeps answering 304 to our validators.
    feed_server.set("/a.xml", rss_feed([UNRELATED, SDF_BUKAMAL]))
    etag = p.db.execute("SELECT etag FROM feeds").fetchone()[0]
    original = feed_server.routes["/a.xml"]
    feed_server.routes["/a.xml"] = {**original, "status": 304, "body": b"", "headers": {"ETag": etag}}
    assert poll(p).status == "not_modified"
    assert alerts(p) == []
    # Later, the periodic unconditional fetch sends no validators: the server has
    # to answer with the content, and the item alerts.
    feed_server.routes["/a.xml"] = original
    clock.now += pipeline_module.FULL_FETCH_EVERY + 1
    outcome = poll(p)
    assert outcome.status == "ok" and outcome.new_items == 1
    assert alerts(p)


def test_failed_commit_records_nothing_and_the_next_poll_alerts(tmp_path, feed_server, monkeypatch):
    url = feed_server.set("/a.xml", rss_feed([SDF_BUKAMAL]))
    p = make(tmp_path, {"a": url})

    def disk_full(*args, **kwargs):
        raise StateError("state.sqlite3: database or disk is full")

    monkeypatch.setattr(pipeline_module, "plan_alerts", disk_full)
    failed = poll(p)
    assert failed.status == "error" and failed.error_kind == "state"
    assert p.db.execute("SELECT COUNT(*) FROM items").fetchone()[0] == 0
    assert p.db.scalar("SELECT etag FROM feeds") is None

    monkeypatch.undo()
    ok = poll(p)
    assert ok.status == "ok" and ok.new_items == 1  # a full fetch: no validator was kept
    assert alerts(p)


def test_an_edit_alerts_only_for_rules_it_did_not_match_before(tmp_path, feed_server):
    url = feed_server.set("/a.xml", rss_feed([SDF_BUKAMAL]))
    p = make(tmp_path, {"a": url})
    poll(p)
    before = {r["rule_id"] for r in alerts(p)}

    # A cosmetic edit (diacritics, tatweel): no change at all for matching.
    cosmetic = {**SDF_BUKAMAL, "title": "قَسَد تتقـدم نحو البوكمال"}
    feed_server.set("/a.xml", rss_feed([cosmetic]))
    assert poll(p).changed_items == 0
    # A real edit that keeps the same rules: changed, but no new alert.
    edited = {**SDF_BUKAMAL, "description": SDF_BUKAMAL["description"] + " وأكدت مصادر محلية ذلك."}
    feed_server.set("/a.xml", rss_feed([edited]))
    outcome = poll(p)
    assert outcome.changed_items == 1 and outcome.alerts_new == 0
    # An edit that adds the al-Omar field fight: only the new rule alerts.
    omar = {**edited, "description": edited["description"] + " واندلعت اشتباكات عنيفة للسيطرة على حقل العمر النفطي."}
    feed_server.set("/a.xml", rss_feed([omar]))
    outcome = poll(p)
    after = {r["rule_id"] for r in alerts(p)}
    assert outcome.alerts_new >= 1
    assert before < after and "omar_field_fighting" in after - before


@pytest.mark.parametrize("workers", [0, 2], ids=["thread", "processes"])
def test_reloaded_rules_never_realert_seen_items_and_apply_to_new_ones(tmp_path, feed_server, workers):
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    for f in (ROOT / "rules").glob("*.yaml"):
        (rules_dir / f.name).write_text(f.read_text(encoding="utf-8"), encoding="utf-8")
    url = feed_server.set("/a.xml", rss_feed([SDF_BUKAMAL]))
    p = make(tmp_path, {"a": url}, rules_dir=rules_dir, workers=workers)
    poll(p)
    count = len(alerts(p))
    (rules_dir / "extra.yaml").write_text(
        "rules:\n  - id: any_bukamal\n    title: Any mention of Al-Bukamal\n    any: [bukamal]\n", encoding="utf-8")
    p = reloaded(p, load_rules([rules_dir]))
    assert "any_bukamal" in p.context.ruleset.rule_ids
    feed_server.set("/a.xml", rss_feed([SDF_BUKAMAL]), headers={"X-Changed": "1"})
    poll(p)
    assert len(alerts(p)) == count
    # A new item is matched with the new rules (in the worker processes too).
    new = {"title": "وصول تعزيزات إلى البوكمال", "link": "https://a.example/news/9", "description": "تعزيزات."}
    feed_server.set("/a.xml", rss_feed([SDF_BUKAMAL, new]))
    poll(p)
    assert {r["rule_id"] for r in alerts(p)[count:]} == {"any_bukamal", "deir_ez_zor_front"}
    if workers:
        assert p.workers.started == 2, "the reload started workers with the new rules"


def test_the_same_article_from_two_outlets_is_one_story(tmp_path, feed_server):
    stem, text = corpus_articles()[0]
    paragraphs = [line for line in text.splitlines() if line.strip()]
    original = {"title": "قسد تسيطر على حقل العمر", "link": "https://one.example/a", "description": text}
    republished = {"title": "سباق على نفط شرق الفرات", "link": "https://two.example/b",
                   "description": "\n".join(["اقرأ أيضا: تطورات"] + paragraphs[1:] + paragraphs[:1])}
    p = make(tmp_path, {"one": feed_server.set("/1.xml", rss_feed([original])),
                        "two": feed_server.set("/2.xml", rss_feed([republished]))})
    first = poll(p, "one")
    second = poll(p, "two")
    assert first.alerts_new >= 1
    assert second.alerts_new == 0 and second.alerts_already_sent >= 1
    stories = p.db.execute("SELECT id, sources FROM stories").fetchall()
    assert len(stories) == 1 and stories[0]["sources"] == 2


@pytest.mark.parametrize("status, kind", [(404, "status"), (500, "status")])
def test_http_errors_are_recorded_on_the_feed(tmp_path, feed_server, status, kind):
    url = feed_server.set("/gone.xml", "nope", status=status, content_type="text/plain")
    p = make(tmp_path, {"a": url})
    outcome = poll(p)
    assert outcome.status == "error" and outcome.error_kind == kind
    row = p.db.execute("SELECT consecutive_errors, last_error_kind, last_error FROM feeds").fetchone()
    assert row["consecutive_errors"] == 1 and row["last_error_kind"] == kind and str(status) in row["last_error"]


def test_full_text_feeds_match_the_article_page(tmp_path, feed_server):
    page = ("<!doctype html><html lang='ar'><head><meta charset='utf-8'><title>خبر</title></head><body>"
            "<nav>الرئيسية | أخبار | رياضة</nav><article><h1>تطورات ميدانية</h1>"
            + "<p>قالت مصادر محلية إن قوات سوريا الديمقراطية تقدمت خلال الساعات الماضية نحو مدينة البوكمال "
              "على الحدود السورية العراقية، وسط اشتباكات متقطعة مع عناصر التنظيم.</p>" * 3
            + "</article><footer>جميع الحقوق محفوظة</footer></body></html>")
    article_url = feed_server.set("/article/1", page, content_type="text/html; charset=utf-8")
    headline_only = {"title": "تطورات ميدانية في الشرق السوري", "link": article_url, "description": ""}
    url = feed_server.set("/a.xml", rss_feed([headline_only]))

    plain = make(tmp_path / "plain", {"a": url})
    assert poll(plain).alerts_new == 0  # the headline alone names nothing

    full = make(tmp_path / "full", {"a": url}, full_text=True)
    outcome = poll(full)
    assert outcome.alerts_new >= 1
    assert "sdf_near_bukamal" in {r["rule_id"] for r in alerts(full)}
    assert feed_server.hits["/article/1"] == 1
    # The feed changes: the new item's page is fetched, the known one's is not.
    other = feed_server.set("/article/2", "<html><body><p>طقس معتدل</p></body></html>",
                            content_type="text/html; charset=utf-8")
    feed_server.set("/a.xml", rss_feed([headline_only, {"title": "الطقس", "link": other, "description": ""}]))
    assert poll(full).new_items == 1
    assert feed_server.hits["/article/1"] == 1 and feed_server.hits["/article/2"] == 1


def test_a_feeds_first_poll_alerts_only_for_its_recent_items_unless_it_asks_for_more(tmp_path, feed_server):
    import email.utils

    clock = Clock()
    old = email.utils.formatdate(clock.now - 10 * 86400, usegmt=True)
    recent = email.utils.formatdate(clock.now - 3600, usegmt=True)
    backlog = [{**SDF_BUKAMAL, "link": f"https://a.example/old/{i}", "date": old} for i in range(5)]
    fresh = {**SDF_BUKAMAL, "link": "https://a.example/fresh", "title": "قسد على أبواب البوكمال", "date": recent}
    for policy, expected in (("recent", {"guid:https://a.example/fresh"}), ("none", set()),
                             ("all", {"guid:https://a.example/fresh"} | {f"guid:https://a.example/old/{i}"
                                                                          for i in range(5)})):
        url = feed_server.set(f"/{policy}.xml", rss_feed([*backlog, fresh]))
        p = make(tmp_path / policy, {"a": url}, clock=clock, first_poll=policy)
        outcome = poll(p)
        assert outcome.new_items == 6
        alerted = {r["item_key"] for r in alerts(p)}
        # Dedup folds identical copies into one story: compare the items that alerted, not the stories.
        assert alerted <= expected and bool(alerted) == bool(expected), (policy, alerted)
        # After the first poll every new item alerts, however old its date: it is news to this feed.
        late = {**SDF_BUKAMAL, "link": "https://a.example/late", "title": "تقدم جديد لقسد نحو البوكمال",
                "description": "قالت قوات سوريا الديمقراطية إنها دخلت أطراف مدينة البوكمال.", "date": old}
        feed_server.set(f"/{policy}.xml", rss_feed([*backlog, fresh, late]))
        clock.now += pipeline_module.FULL_FETCH_EVERY + 1
        assert poll(p).alerts_new >= 1, policy
