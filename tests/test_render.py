"""Rendering: hostile feed strings, safe Telegram splitting (property test), RTL isolates, user templates."""

from __future__ import annotations

import asyncio
import html as htmllib
import io
import re

from fake_telegram import check_html
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.alerts.deliver import Deliverer
from monitor.alerts.render import (
    FSI,
    PDI,
    Renderer,
    clean_subject,
    highlight,
    isolate_ltr,
    split_telegram_html,
)
from monitor.alerts.settings import ChannelSettings
from monitor.state.alerts import AlertPayload, PayloadHit
from monitor.state.outbox import AlertView
from monitor.state.stories import StorySource

HOSTILE = 'عاجل </b> <i>غير مغلق & "اقتباس" <script>alert(1)</script> &amp; &#x202E; <a href="x">'

_VIEW_FIELDS = {"kind", "story_id", "alert_id", "rule_id", "severity", "possible_repeat", "earlier_rules", "sources"}


def view(**over) -> AlertView:
    """An alert view as the state layer loads it; keyword arguments override view or payload fields."""
    payload = dict(rule_id=over.get("rule_id", "r1"), rule_title="قاعدة <b>الاختبار</b> & Co", feed="منفذ </i> & <b>",
                   title=HOSTILE, summary="نص الخبر " + HOSTILE, link="https://news.example/a?x=1&y=<2>",
                   published="2017-10-23T08:00:00+03:00",
                   hits=(PayloadHit(entity="e", alias="عاجل", field="title", start=0, end=4, text="عاجل"),))
    payload.update({k: v for k, v in over.items() if k not in _VIEW_FIELDS or k == "rule_id"})
    fields = dict(outbox_id=1, channel="tg", kind="alert", possible_repeat=False, alert_id=1, story_id=1,
                  story_created=0.0, rule_id="r1", severity="warning", created=0.0, item_key="k",
                  sources=(StorySource(feed="منفذ </i> & <b>", title=HOSTILE, link="javascript:alert(1)"),),
                  earlier_rules=())
    fields.update({k: v for k, v in over.items() if k in _VIEW_FIELDS})
    return AlertView(payload=AlertPayload(**payload), **fields)


def visible(markup: str) -> str:
    """The text a reader sees: tags removed, entities decoded, isolates dropped."""
    return htmllib.unescape(re.sub(r"<[^>]*>", "", markup)).replace(FSI, "").replace(PDI, "")


# -- escaping --------------------------------------------------------------------

def test_telegram_escapes_every_feed_string_and_stays_valid_html():
    (msg,) = Renderer().telegram([view()])
    assert check_html(msg) == []
    assert "<script>" not in msg and "<i>غير" not in msg and 'href="x"' not in msg
    shown = visible(msg)
    assert HOSTILE in shown                                         # every character, shown literally
    assert "قاعدة <b>الاختبار</b> & Co" in shown and "منفذ </i> & <b>" in shown
    assert "<b>عاجل</b>" in msg                                   # our own highlight is real markup
    assert "<a " not in msg                     # neither "<2>" in a URL nor javascript: becomes an anchor
    assert "javascript:" not in msg


def test_only_http_links_become_anchors():
    (msg,) = Renderer().telegram([view(link="https://news.example/a?x=1&y=2")])
    assert '<a href="https://news.example/a?x=1&amp;y=2">' in msg and check_html(msg) == []


def test_email_html_escapes_and_text_keeps_the_raw_characters():
    mail = Renderer().email([view()])
    assert "<script>" not in mail.html and "&lt;script&gt;" in mail.html.replace(FSI, "").replace(PDI, "")
    assert '<html dir="rtl" lang="ar">' in mail.html
    assert "<script>" in mail.text.replace(FSI, "").replace(PDI, "")  # plain text: nothing to escape
    assert "\n" not in mail.subject and "\r" not in mail.subject


def test_clean_subject_is_one_short_line():
    assert clean_subject("أ\r\nBcc: x@y\tب") == "أ Bcc: x@y ب"
    long = "كلمة " * 100
    cut = clean_subject(long)
    assert len(cut) <= 149 and cut.endswith("…") and cut[:-1].strip().endswith("كلمة")


# -- splitting -------------------------------------------------------------------

ALPHABET = st.sampled_from(list("قسدالبوكمحرفيةءآ") + list("abcXYZ019") + ["😀", "🇸🇾", "<", ">", "&", '"',
                                                                           " ", " ", "\n", "،", "."])


@st.composite
def bold_text(draw):
    text = "".join(draw(st.lists(ALPHABET, min_size=0, max_size=1500)))
    cuts = sorted(set(draw(st.lists(st.integers(0, len(text)), max_size=40))))
    spans = [(a, b) for a, b in zip(cuts[::2], cuts[1::2], strict=False) if a < b]
    return text, spans


ENTITY_OR_TAG = re.compile(r"&(?:lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);|<(?:/?b|/?i|/?a[^<>]*)>")


@settings(max_examples=300, deadline=None)
@given(bold_text(), st.integers(20, 600))
def test_split_never_cuts_inside_a_tag_or_entity(sample, limit):
    text, spans = sample
    markup = str(highlight(text, spans, html=True))
    pieces = split_telegram_html(markup, limit)
    for piece in pieces:
        assert len(piece.encode("utf-16-le")) // 2 <= limit
        assert check_html(piece) == []
        # every < and & in a piece starts a whole tag or entity
        rest = ENTITY_OR_TAG.sub("", piece)
        assert "<" not in rest and ">" not in rest and "&" not in rest
    # nothing lost or added (pieces that were only whitespace may be dropped)
    assert "".join(visible("".join(pieces)).split()) == "".join(text.split())
    if len(markup.encode("utf-16-le")) // 2 <= limit:
        assert pieces == [markup]


def test_split_real_message_at_4096():
    summary = ("قسد تتقدم نحو البوكمال F-16 و 3,000 مقاتل & <تفاصيل> " * 300)
    views = [view(story_id=n, alert_id=n, summary=summary, title=f"خبر {n} " + HOSTILE) for n in range(30)]
    pieces = Renderer().telegram(views)
    assert len(pieces) > 1
    assert all(len(p.encode("utf-16-le")) // 2 <= 4096 and check_html(p) == [] for p in pieces)
    assert sum(p.count("📰") for p in pieces) == 30


# -- bidi isolates ---------------------------------------------------------------

def test_latin_numbers_and_urls_are_isolated_in_arabic():
    text = "أسقطت طائرة F-16 قرب البوكمال و 3,000 مقاتل، التفاصيل https://news.example/a?b=1 اليوم"
    out = isolate_ltr(text)
    assert f"{FSI}F-16{PDI}" in out and f"{FSI}3,000{PDI}" in out
    assert f"{FSI}https://news.example/a?b=1{PDI}" in out
    assert out.count(FSI) == out.count(PDI) == 3
    assert out.replace(FSI, "").replace(PDI, "") == text
    assert isolate_ltr("قسد تسيطر على حقل العمر") == "قسد تسيطر على حقل العمر"


def test_isolates_are_balanced_everywhere_and_never_inside_a_link_target():
    v = view(title="قسد و SDF تسيطران على 3 حقول", link="https://news.example/a?x=1", feed="Enab Baladi")
    r = Renderer()
    outputs = r.telegram([v]) + [r.email([v]).html, r.email([v]).text, r.console([v])]
    for out in outputs:
        assert out.count(FSI) == out.count(PDI) > 0
    assert f"{FSI}SDF{PDI}" in outputs[0] and f"{FSI}Enab Baladi{PDI}" in outputs[0]
    assert 'href="https://news.example/a?x=1"' in outputs[0]
    assert FSI not in r.email([v]).subject  # subjects carry no invisible controls


# -- templates -------------------------------------------------------------------

def test_templates_are_overridable_one_file_at_a_time(tmp_path):
    (tmp_path / "telegram.html.j2").write_text(
        "{% for a in stories %}CUSTOM {{ a.plain_title }} | {{ a.rules|map(attribute='severity')|join(',') }}"
        "{% endfor %}", encoding="utf-8")
    r = Renderer(tmp_path)
    (msg,) = r.telegram([view(), view(alert_id=2, rule_id="r2", severity="critical")])
    assert msg.startswith("CUSTOM ") and msg.endswith("| critical,warning")
    assert "&lt;script&gt;" in msg and "<script>" not in msg   # autoescape applies to user templates too
    assert r.email([view()]).html.startswith("<!DOCTYPE html>")  # not overridden: built-in


def test_deliverer_uses_the_templates_dir(tmp_path):
    from monitor.alerts.route import plan_alerts
    from monitor.alerts.settings import RoutingSettings
    from monitor.rules import RuleMatch
    from monitor.state import open_state
    from monitor.stories.index import StoryIndex
    from monitor.types import Item

    (tmp_path / "tpl").mkdir()
    (tmp_path / "tpl" / "console.txt.j2").write_text("MINE: {{ stories[0].plain_title }}\n", encoding="utf-8")
    conn = open_state(tmp_path / "s.db")
    ch = {"out": ChannelSettings(url="console://")}
    item = Item("f", "g1", "قسد تتقدم", "نص")
    with conn.transaction():
        story = StoryIndex().assign(conn, item, 1.0)
        plan_alerts(conn, item, story, [RuleMatch("r", "R", "", "info", (), None, ())], ch, RoutingSettings(), 1.0)
    out = io.StringIO()
    asyncio.run(Deliverer(conn, ch, templates_dir=tmp_path / "tpl", console=out).drain(timeout=5))
    assert out.getvalue() == "MINE: قسد تتقدم\n"
