"""Telegram end to end: the native Bot API sender against a loopback fake Bot API.

Outages, rate limits and backoffs run on a virtual clock shared by the fake
and the deliverer: "a minute of 5xx" is a minute of virtual time, and the
assertions read what the fake received, never how long anything took.
"""

from __future__ import annotations

import asyncio
import io
import logging

import pytest
from fake_telegram import FakeTelegram, VirtualClock, check_html

from monitor.alerts.deliver import Deliverer, send_test_message
from monitor.alerts.route import plan_alerts
from monitor.alerts.senders import FailureReason
from monitor.alerts.senders.telegram import API_ENV, classify, parse_tgram
from monitor.alerts.settings import ChannelSettings, RoutingSettings
from monitor.errors import DeliveryError
from monitor.rules import Hit, RuleMatch
from monitor.state import open_state
from monitor.state.alerts import recent
from monitor.stories.index import StoryIndex
from monitor.types import Item

TOKEN = "123456789:AAHsecretTOKENvalue_abcdefghijklmnop"
URL = f"tgram://{TOKEN}/-1001234"
FAST = dict(min_interval=0, per_minute=1000, backoff_initial=0.05, backoff_max=0.2)
VIRTUAL = dict(min_interval=0, per_minute=100000, backoff_initial=5, backoff_max=60)


@pytest.fixture
def fake(monkeypatch):
    server = FakeTelegram().start()
    monkeypatch.setenv(API_ENV, server.base)
    yield server
    server.stop()


@pytest.fixture
def clock():
    return VirtualClock()


@pytest.fixture
def vfake(monkeypatch, clock):
    """The fake on the virtual clock."""
    server = FakeTelegram(clock=clock.time).start()
    monkeypatch.setenv(API_ENV, server.base)
    yield server
    server.stop()


def rule(rule_id="qasad", title="قسد <SDF>", hits=()):
    return RuleMatch(rule_id, title, "", "warning", (), None, tuple(hits))


def seed(conn, channels, n, long_summary="", now=1000.0, routing=None, first=0):
    routing = routing or RoutingSettings()
    idx = StoryIndex()
    for i in range(first, first + n):
        title = f"<b>عاجل</b> & قسد {i} تسيطر على موقع رقم {i} في R&D <script>"
        item = Item(f"outlet{i}", f"guid:{i}", title, long_summary or f"تفاصيل الخبر {i} عن قسد",
                    link=f"https://news.example/a?id={i}&x=<1>")
        hit = Hit("qasad", "قسد", "title", title.index("قسد"), title.index("قسد") + 3, "قسد")
        with conn.transaction():
            story = idx.assign(conn, item, now + i)
            plan_alerts(conn, item, story, [rule(hits=(hit,))], channels, routing, now + i)
    return idx


def numbers(texts):
    return [int(t.split("موقع رقم ")[1].split(" ")[0].strip("\u2068\u2069")) for t in texts]


def test_alerts_arrive_once_in_order_through_429_and_5xx(tmp_path, fake, caplog):
    fake.answer_429, fake.retry_after, fake.fail_5xx = 1, 1, 2
    conn = open_state(tmp_path / "s.db")
    ch = {"tg": ChannelSettings(url=URL, **FAST)}
    seed(conn, ch, 6)
    caplog.set_level(logging.DEBUG)
    report = asyncio.run(Deliverer(conn, ch).drain(timeout=30))
    assert report.sent == 6 and report.dead == 0 and report.pending == 0
    texts = fake.messages["-1001234"]
    assert numbers(texts) == list(range(6))
    assert all(not check_html(t) for t in texts)
    assert "&lt;\u2068b\u2069&gt;عاجل&lt;/\u2068b\u2069&gt; &amp;" in texts[0] and "<b>قسد</b>" in texts[0]
    assert [s for s, _ in fake.rejected] == [429, 502, 502]  # retry_after obeyed: no early retry
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("monitor")]
    assert ours and not any(TOKEN.split(":")[1] in m for m in ours)
    ids = [d.message_id for a in recent(conn) for d in a.deliveries]
    assert sorted(ids) == sorted(f"-1001234/{n}" for n in range(1, 7))  # the outbox keeps Telegram's ids


def test_429_waits_exactly_as_long_as_telegram_says(tmp_path, vfake, clock):
    vfake.answer_429, vfake.retry_after = 3, 7
    conn = open_state(tmp_path / "s.db")
    ch = {"tg": ChannelSettings(url=URL, **VIRTUAL)}
    seed(conn, ch, 4)
    start = clock.time()
    report = asyncio.run(Deliverer(conn, ch, clock=clock.time, sleep=clock.sleep).drain(timeout=600))
    assert report.sent == 4 and report.dead == 0
    assert numbers(vfake.messages["-1001234"]) == [0, 1, 2, 3]
    assert [r for _, r in vfake.rejected] == ["rate limited"] * 3    # never "retried before retry_after"
    assert clock.time() - start >= 3 * 7
    methods = [payload["text"] for _, payload in vfake.requests]
    assert numbers(methods[:4]) == [0, 0, 0, 0]  # the same message again after each 429, never another one


def test_five_minutes_of_5xx_keep_order_and_lose_nothing(tmp_path, vfake, clock):
    """The whole channel down: nothing is charged to a message, so a short deadline kills nothing."""
    vfake.fail_5xx_until = clock.time() + 300
    conn = open_state(tmp_path / "s.db")
    ch = {"tg": ChannelSettings(url=URL, give_up={"server_error": {"attempts": 2, "deadline": "10s"}}, **VIRTUAL)}
    seed(conn, ch, 10)
    report = asyncio.run(Deliverer(conn, ch, clock=clock.time, sleep=clock.sleep).drain(timeout=3600))
    assert report.sent == 10 and report.dead == 0 and report.pending == 0
    assert numbers(vfake.messages["-1001234"]) == list(range(10))
    during = [payload for _, payload in vfake.requests][:len(vfake.rejected)]
    assert set(numbers(p["text"] for p in during)) <= {0, 1}     # only the head and one probe were tried
    assert 8 <= len(vfake.rejected) <= 40                          # backed off, not hammered (cap 60 s)


def test_a_message_telegram_refuses_goes_dead_and_the_other_49_arrive_in_order(tmp_path, vfake, clock):
    vfake.refuse = lambda text: "موقع رقم \u206825\u2069 " in text
    conn = open_state(tmp_path / "s.db")
    ops = io.StringIO()
    ch = {"tg": ChannelSettings(url=URL, **VIRTUAL), "ops": ChannelSettings(url="console://")}
    seed(conn, {"tg": ch["tg"]}, 50)
    d = Deliverer(conn, ch, clock=clock.time, sleep=clock.sleep, ops_channel="ops", console=ops)
    report = asyncio.run(d.drain(timeout=3600))
    assert numbers(vfake.messages["-1001234"]) == [n for n in range(50) if n != 25]
    assert report.sent == 49 and report.dead == 1
    dead = [dv for a in recent(conn, limit=60) for dv in a.deliveries if dv.state == "dead"]
    assert len(dead) == 1 and dead[0].reason == "bad_request" and dead[0].failures == 3
    assert "can't parse entities" in dead[0].last_error and TOKEN not in dead[0].last_error
    refused = [r for s, r in vfake.rejected if s == 400]
    assert len(refused) == 3  # its give-up rule: 3 attempts for bad_request
    # the ops channel got one notice when the channel started dead-lettering
    notices = conn.execute("SELECT channel, body FROM outbox WHERE kind = 'notice'").fetchall()
    assert len(notices) == 1 and notices[0][0] == "ops" and "giving up" in notices[0][1]
    asyncio.run(d.drain(timeout=10))
    assert "channel tg has started giving up" in ops.getvalue()
    from monitor import metrics
    assert metrics.REGISTRY.get_sample_value("monitor_outbox_dead", {"channel": "tg", "reason": "bad_request"}) == 1


def test_message_too_long_goes_dead_at_once_and_blocks_nothing(tmp_path, vfake, clock):
    conn = open_state(tmp_path / "s.db")
    ch = {"tg": ChannelSettings(url=URL, **VIRTUAL)}
    seed(conn, ch, 3)
    # a user template that renders far beyond 4096 units (split_telegram_html is bypassed by a huge single token)
    tpl = tmp_path / "tpl"
    tpl.mkdir()
    (tpl / "telegram.html.j2").write_text(
        "{% for a in stories %}{{ a.plain_title }}{% if '\u20681\u2069' in a.plain_title or ' 1 ' in a.plain_title %}"
        "<a href=\"https://x.example/{{ 'y' * 5000 }}\">x</a>{% endif %}{% endfor %}", encoding="utf-8")
    report = asyncio.run(Deliverer(conn, ch, templates_dir=tpl, clock=clock.time, sleep=clock.sleep).drain(timeout=60))
    assert report.sent == 2 and report.dead == 1
    (dead,) = [dv for a in recent(conn) for dv in a.deliveries if dv.state == "dead"]
    assert dead.reason == "too_large" and dead.failures == 1


def test_unauthorized_is_the_channels_problem_nothing_dies_and_the_token_never_shows(tmp_path, vfake, clock):
    vfake.status_always = 401
    conn = open_state(tmp_path / "s.db")
    ch = {"tg": ChannelSettings(url=URL, give_up={"auth": {"attempts": 1, "deadline": 0}}, **VIRTUAL)}
    seed(conn, ch, 3)
    report = asyncio.run(Deliverer(conn, ch, clock=clock.time, sleep=clock.sleep).drain(timeout=600))
    assert report.dead == 0 and report.sent == 0 and report.pending == 3
    rows = [dv for a in recent(conn) for dv in a.deliveries]
    tried = [r for r in rows if r.failures]
    assert [r.outbox_id for r in tried] == [2, 1]  # the oldest and one probe, over and over; never the third
    assert all(r.state == "pending" and r.reason == "auth" for r in tried)
    assert all("401" in (r.last_error or "") and TOKEN.split(":")[1] not in (r.last_error or "") for r in tried)
    # the token is fixed: a new sender delivers everything, oldest first
    vfake.status_always = None
    assert asyncio.run(Deliverer(conn, ch, clock=clock.time, sleep=clock.sleep).drain(timeout=600)).sent == 3
    assert numbers(vfake.messages["-1001234"]) == [0, 1, 2]


def test_supergroup_migration_is_followed_and_remembered(tmp_path, fake):
    fake.migrated = {"-1001234": -1009999}
    conn = open_state(tmp_path / "s.db")
    ch = {"tg": ChannelSettings(url=URL, **FAST)}
    seed(conn, ch, 2)
    report = asyncio.run(Deliverer(conn, ch).drain(timeout=10))
    assert report.sent == 2 and report.failed == 0
    assert numbers(fake.messages["-1009999"]) == [0, 1] and "-1001234" not in fake.messages
    to_old = [p for _, p in fake.requests if p["chat_id"] == "-1001234"]
    assert len(to_old) == 1  # the first request learned the new chat; the second went there directly
    seed(conn, ch, 1, now=5000.0, first=2)  # after a restart: a new deliverer goes straight to the new chat
    assert asyncio.run(Deliverer(conn, ch).drain(timeout=10)).sent == 1
    assert len([p for _, p in fake.requests if p["chat_id"] == "-1001234"]) == 1
    assert conn.execute("SELECT message_id FROM outbox ORDER BY id").fetchall()[0][0].startswith("-1009999/")


def _story(conn, channels, idx, item, rules, now, routing=None):
    routing = routing or RoutingSettings()
    with conn.transaction():
        story = idx.assign(conn, item, now)
        return plan_alerts(conn, item, story, rules, channels, routing, now)


ARTICLE = Item("outlet-a", "guid:a", "قسد تتقدم نحو البوكمال", "قالت قوات سوريا الديمقراطية إنها تتقدم نحو البوكمال",
               link="https://a.example/1")


def test_updates_are_replies_to_the_storys_first_message(tmp_path, fake):
    conn = open_state(tmp_path / "s.db")
    ch = {"tg": ChannelSettings(url=URL, **FAST)}
    routing = RoutingSettings(followup_after=0)
    idx = StoryIndex()
    _story(conn, ch, idx, ARTICLE, [rule("front", "جبهة دير الزور")], 1000.0, routing)
    assert asyncio.run(Deliverer(conn, ch).drain(timeout=10)).messages == 1
    edited = Item(ARTICLE.feed, ARTICLE.key, ARTICLE.title, ARTICLE.summary + " وحقل العمر", link=ARTICLE.link)
    _story(conn, ch, idx, edited, [rule("front", "جبهة دير الزور"), rule("oil", "حقل العمر")], 2000.0, routing)
    copy = Item("outlet-b", "guid:b", ARTICLE.title, ARTICLE.summary, link="https://b.example/1")
    _story(conn, ch, idx, copy, [rule("front", "جبهة دير الزور"), rule("oil", "حقل العمر")], 3000.0, routing)
    assert asyncio.run(Deliverer(conn, ch).drain(timeout=10)).messages == 2
    first, update, followup = fake.chat("-1001234")
    assert first.reply_to is None and update.reply_to == first.message_id and followup.reply_to == first.message_id
    assert "حقل العمر" in update.text and "تحديث" in update.text
    assert "نشرته 1 وسائل إعلام أخرى" in followup.text
    sent_as = [d.sent_as for a in reversed(recent(conn)) for d in a.deliveries]
    assert sent_as == ["message", "reply", "reply"]


def test_after_dedup_merges_two_stories_updates_reply_to_the_survivors_first_message(tmp_path, fake):
    conn = open_state(tmp_path / "s.db")
    ch = {"tg": ChannelSettings(url=URL, **FAST)}
    idx = StoryIndex()
    other = Item("outlet-b", "guid:b", "داعش ينسحب من الميادين", "أفادت مصادر محلية بانسحاب داعش من الميادين",
                 link="https://b.example/2")
    _story(conn, ch, idx, ARTICLE, [rule("front", "جبهة دير الزور")], 1000.0)
    _story(conn, ch, idx, other, [rule("isis", "داعش")], 1001.0)
    asyncio.run(Deliverer(conn, ch).drain(timeout=10))
    survivor, absorbed = (r[0] for r in conn.execute("SELECT story_id FROM alerts ORDER BY id"))
    with conn.transaction():  # what the dedup stage does when a later item shows the two are one story
        conn.execute("UPDATE alerts SET story_id = ? WHERE story_id = ?", (survivor, absorbed))
    edited = Item(other.feed, other.key, other.title, other.summary + " وحقل العمر", link=other.link)
    with conn.transaction():  # a new rule fires on the merged story
        plan_alerts(conn, edited, _assignment(survivor), [rule("oil", "حقل العمر")], ch, RoutingSettings(), 2000.0)
    asyncio.run(Deliverer(conn, ch).drain(timeout=10))
    first, second, update = fake.chat("-1001234")
    assert update.reply_to == first.message_id   # one thread: the surviving story's first message


def _assignment(story_id):
    from monitor.stories.index import StoryAssignment

    return StoryAssignment(story_id=story_id, new_story=False, reason="exact")


def test_updates_edit_the_first_message_when_the_channel_chooses_edits(tmp_path, fake):
    conn = open_state(tmp_path / "s.db")
    ch = {"tg": ChannelSettings(url=URL, updates="edit", **FAST)}
    routing = RoutingSettings(followup_after=0)
    idx = StoryIndex()
    _story(conn, ch, idx, ARTICLE, [rule("front", "جبهة دير الزور")], 1000.0, routing)
    asyncio.run(Deliverer(conn, ch).drain(timeout=10))
    edited = Item(ARTICLE.feed, ARTICLE.key, ARTICLE.title, ARTICLE.summary + " وحقل العمر", link=ARTICLE.link)
    _story(conn, ch, idx, edited, [rule("front", "جبهة دير الزور"), rule("oil", "حقل العمر")], 2000.0, routing)
    asyncio.run(Deliverer(conn, ch).drain(timeout=10))
    (only,) = fake.chat("-1001234")
    assert "جبهة دير الزور" in only.text and "حقل العمر" in only.text and len(only.edits) == 1
    # two more outlets carry it: each new source edits the same message again ("+N sources")
    for n, feed in enumerate(["outlet-b", "outlet-c"]):
        copy = Item(feed, f"guid:{feed}", ARTICLE.title, ARTICLE.summary, link=f"https://{feed}.example/1")
        _story(conn, ch, idx, copy, [rule("front", "جبهة دير الزور")], 3000.0 + n, routing)
        asyncio.run(Deliverer(conn, ch).drain(timeout=10))
    (only,) = fake.chat("-1001234")
    assert "المصادر (3)" in only.text and len(only.edits) == 3
    assert [m for m, _ in fake.requests] == ["sendMessage"] + ["editMessageText"] * 3
    assert not check_html(only.text)


def test_an_edit_of_a_deleted_message_becomes_a_reply(tmp_path, fake):
    conn = open_state(tmp_path / "s.db")
    ch = {"tg": ChannelSettings(url=URL, updates="edit", **FAST)}
    idx = StoryIndex()
    _story(conn, ch, idx, ARTICLE, [rule("front", "جبهة دير الزور")], 1000.0)
    asyncio.run(Deliverer(conn, ch).drain(timeout=10))
    with fake.lock:
        fake.chats["-1001234"][0].message_id = 999  # "deleted": the id we stored no longer exists
    edited = Item(ARTICLE.feed, ARTICLE.key, ARTICLE.title, ARTICLE.summary + " وحقل العمر", link=ARTICLE.link)
    _story(conn, ch, idx, edited, [rule("oil", "حقل العمر")], 2000.0)
    assert asyncio.run(Deliverer(conn, ch).drain(timeout=10)).sent == 1
    assert [m for m, _ in fake.requests] == ["sendMessage", "editMessageText", "sendMessage"]
    assert fake.requests[-1][1]["reply_parameters"] == {"message_id": 1, "allow_sending_without_reply": True}


def test_forum_topic_and_link_preview_options(tmp_path, fake):
    fake.topics = {42}
    conn = open_state(tmp_path / "s.db")
    ch = {"tg": ChannelSettings(url=URL + ":42?silent=yes", link_preview=True, **FAST),
          "plain": ChannelSettings(url=f"tgram://{TOKEN}/-100777", **FAST)}
    seed(conn, ch, 1)
    assert asyncio.run(Deliverer(conn, ch).drain(timeout=10)).sent == 2
    (topic,) = fake.chat("-1001234")
    (plain,) = fake.chat("-100777")
    assert topic.thread_id == 42 and topic.preview_disabled is False and topic.silent
    assert plain.thread_id is None and plain.preview_disabled is True and not plain.silent


def test_long_message_is_split_on_safe_boundaries(tmp_path):
    import dataclasses

    from monitor.alerts.render import Renderer
    from monitor.state.outbox import load_views

    conn = open_state(tmp_path / "s.db")
    ch = {"tg": ChannelSettings(url=URL, **FAST)}
    seed(conn, ch, 1, long_summary=("قسد " + "كلمة & <نص> طويل جدا " * 40 + "\n") * 40)
    (view,) = load_views(conn, (1,))
    view = dataclasses.replace(view, payload=dataclasses.replace(view.payload, hits=()))
    digest = [dataclasses.replace(view, story_id=n, alert_id=n) for n in range(40)]
    pieces = Renderer().telegram(digest, limit=600)   # a 40-story digest
    assert len(pieces) > 5
    assert all(len(p.encode("utf-16-le")) // 2 <= 600 and not check_html(p) for p in pieces)
    assert sum(p.count("📰") for p in pieces) == 40


def test_one_channel_outage_does_not_delay_another(tmp_path, fake):
    fake.status_always = 502
    conn = open_state(tmp_path / "s.db")
    out = io.StringIO()
    ch = {"tg": ChannelSettings(url=URL, min_interval=0, backoff_initial=5, backoff_max=5),
          "console": ChannelSettings(url="console://")}
    seed(conn, ch, 3)
    report = asyncio.run(Deliverer(conn, ch, console=out).drain(timeout=1))
    assert out.getvalue().count("📰") == 3
    states = dict(conn.execute("SELECT channel, group_concat(DISTINCT state) FROM outbox GROUP BY channel").fetchall())
    assert states == {"console": "sent", "tg": "pending"}
    assert report.sent == 3 and report.pending == 3


def test_send_test_message(fake):
    result = asyncio.run(send_test_message("tg", ChannelSettings(url=URL)))
    assert result.delivered and result.message_id == "-1001234/1"
    assert len(fake.messages["-1001234"]) == 1
    fake.status_always = 401
    with pytest.raises(DeliveryError) as err:
        asyncio.run(send_test_message("tg", ChannelSettings(url=URL)))
    assert "auth" in err.value.message and "401" in err.value.message and TOKEN not in str(err.value)


@pytest.mark.parametrize("status, code, description, reason", [
    (429, 429, "Too Many Requests: retry after 3", FailureReason.RATE_LIMITED),
    (502, 502, "Bad Gateway", FailureReason.SERVER_ERROR),
    (400, 400, "Bad Request: can't parse entities: Unsupported start tag", FailureReason.BAD_REQUEST),
    (400, 400, "Bad Request: message is too long", FailureReason.TOO_LARGE),
    (413, None, "", FailureReason.TOO_LARGE),
    (401, 401, "Unauthorized", FailureReason.AUTH),
    (403, 403, "Forbidden: bot was kicked from the supergroup chat", FailureReason.AUTH),
    (400, 400, "Bad Request: chat not found", FailureReason.AUTH),
    (400, 400, "Bad Request: message thread not found", FailureReason.AUTH),
    (409, 409, "Conflict", FailureReason.UNKNOWN),
])
def test_classify_bot_api_answers(status, code, description, reason):
    assert classify(status, code, description) is reason


def test_tgram_urls_parse_like_apprise_and_refuse_what_we_cannot_honour():
    t = parse_tgram(f"tgram://bot{TOKEN}/-1001234:7?silent=yes")
    assert (t.token, t.chat, t.topic, t.silent, t.preview) == (TOKEN, "-1001234", 7, True, False)
    assert parse_tgram(f"tgram://{TOKEN}/mychannel?topic=3&preview=yes").chat == "@mychannel"
    assert parse_tgram(f"tgram://{TOKEN}/?to=-100555").chat == "-100555"
    assert TOKEN not in repr(t)
    for bad, why in [(f"tgram://{TOKEN}/", "exactly one chat"), (f"tgram://{TOKEN}/-1/-2", "exactly one chat"),
                     (f"tgram://{TOKEN}/-1?format=markdown", "unsupported"), ("tgram://nonsense", "looks like")]:
        with pytest.raises(ValueError, match=why):
            parse_tgram(bad)
    with pytest.raises(ValueError, match="Telegram channels only"):
        ChannelSettings(url="console://", topic=3)
    with pytest.raises(ValueError, match="give_up"):
        ChannelSettings(url=URL, max_attempts=3)
