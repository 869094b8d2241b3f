"""Email end to end: the REAL apprise mailto plugin against a real aiosmtpd server on 127.0.0.1.

The server's handler answers scripted SMTP codes (451 for a while, 550 on
RCPT), and can be started only after the first attempt failed (SMTP down,
then up). Every assertion reads what the server actually received.
"""

from __future__ import annotations

import asyncio
import email
import email.header
import email.policy
import threading

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from conftest import free_port

from monitor.alerts.deliver import Deliverer
from monitor.alerts.render import FSI, PDI, Renderer
from monitor.alerts.route import plan_alerts
from monitor.alerts.settings import ChannelSettings, RoutingSettings
from monitor.rules import Hit, RuleMatch
from monitor.state import open_state
from monitor.state.alerts import recent as list_alerts
from monitor.state.outbox import load_views, retry_dead
from monitor.stories.index import StoryIndex
from monitor.types import Item

FAST = dict(backoff_initial=0.05, backoff_max=0.2)
TITLE = "قسد تسيطر على حقل العمر النفطي شرق دير الزور بعد معارك مع داعش"
BODY = "أعلنت قوات سوريا الديمقراطية (قسد) سيطرتها على حقل العمر، أكبر حقل نفطي في سوريا، قرب البوكمال."
OTHER = [("قسد تعلن بدء حملة عاصفة الجزيرة في ريف دير الزور الشمالي",
          "قالت قسد إن الحملة تهدف إلى طرد داعش من الضفة الشرقية لنهر الفرات حتى البوكمال على الحدود العراقية.")]


class Server:
    """aiosmtpd on 127.0.0.1 whose answers the test scripts."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.data_replies: list[str] = []   # consumed one per DATA before accepting
        self.rcpt_reply: str | None = None  # e.g. "550 5.1.1 no such mailbox": every RCPT
        self.lock = threading.Lock()
        self.controller: Controller | None = None

    # aiosmtpd hooks
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            if self.data_replies:
                return self.data_replies.pop(0)
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            self.messages.append(email.message_from_bytes(envelope.original_content or envelope.content,
                                                          policy=email.policy.default))
        return "250 OK"

    def start(self) -> Server:
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port,
                                     authenticator=lambda *a: AuthResult(success=True),
                                     auth_require_tls=False, auth_required=False)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def url(self) -> str:
        return (f"mailto://monitor:secret@127.0.0.1:{self.port}?mode=insecure&from=monitor@example.org"
                f"&to=analyst@example.org")

    def received(self) -> list[email.message.EmailMessage]:
        with self.lock:
            return list(self.messages)


@pytest.fixture
def smtp():
    server = Server().start()
    yield server
    server.stop()


def seed(conn, channels, *, title=TITLE, body=BODY, link="https://news.example/omar?id=1&x=2", n=1, rules=None):
    idx = StoryIndex()
    for i in range(n):
        t, b_text = (title, body) if i == 0 else OTHER[i - 1]
        item = Item("عنب بلدي", f"guid:{i}", t, b_text, link=link if i == 0 else f"https://news.example/{i}")
        start = t.find("قسد")
        hits = (Hit("qasad", "قسد", "title", start, start + 3, "قسد"),) if start >= 0 else ()
        b = b_text.find("البوكمال")
        hits += (Hit("bukamal", "البوكمال", "body", b, b + 8, "البوكمال"),) if b >= 0 else ()
        matches = rules or [RuleMatch("omar", "Fighting for the al-Omar oil field", "", "critical", (), None, hits),
                            RuleMatch("front", "جبهة دير الزور", "", "info", (), None, hits)]
        with conn.transaction():
            story = idx.assign(conn, item, 1000.0 + i)
            plan_alerts(conn, item, story, matches, channels, RoutingSettings(), 1000.0 + i)


def drain(conn, channels, timeout=10.0):
    return asyncio.run(Deliverer(conn, channels).drain(timeout=timeout))


def decoded_subject(message) -> str:
    raw = message.get("Subject")
    return str(email.header.make_header(email.header.decode_header(str(raw))))


def test_arabic_alert_arrives_as_one_rtl_multipart_message(tmp_path, smtp):
    conn = open_state(tmp_path / "s.db")
    ch = {"mail": ChannelSettings(url=smtp.url(), **FAST)}
    seed(conn, ch)
    expected = Renderer().email(load_views(conn, (1, 2)))
    report = drain(conn, ch)
    assert (report.sent, report.messages, report.pending) == (2, 1, 0)  # two rules, one story: one email
    (msg,) = smtp.received()
    # the raw header is RFC 2047 encoded ASCII; decoded, it is exactly the rendered subject
    raw_subject = msg.as_bytes().split(b"\nSubject:", 1)[1].split(b"\n", 1)[0]
    assert raw_subject.isascii() and b"=?utf-8?" in raw_subject.lower()
    subject = decoded_subject(msg)
    assert subject == expected.subject and TITLE in subject and len(subject) <= 150
    assert FSI not in subject and PDI not in subject
    assert msg.get_content_type() == "multipart/alternative"
    text_part, html_part = msg.get_body(("plain",)), msg.get_body(("html",))
    assert text_part.get_content_charset() == html_part.get_content_charset() == "utf-8"
    html = html_part.get_content()
    assert '<html dir="rtl" lang="ar">' in html and 'href="https://news.example/omar?id=1&amp;x=2"' in html
    assert html.index("Fighting for the al-Omar oil field") < html.index("جبهة دير الزور")  # critical first
    # the text part is our email.txt.j2, not Apprise's HTML-to-text conversion
    text = text_part.get_content()
    assert text.replace("\r\n", "\n").strip() == expected.text.strip()
    assert "الرابط: https://news.example/omar?id=1&x=2" in text and "[critical]" in text
    assert text.count(TITLE) >= 1 and "«البوكمال»" in text


def test_long_arabic_headline_is_shortened_and_decodes_exactly(tmp_path, smtp):
    conn = open_state(tmp_path / "s.db")
    ch = {"mail": ChannelSettings(url=smtp.url(), **FAST)}
    words = "قسد تتقدم نحو البوكمال وتسيطر على مواقع جديدة في ريف دير الزور الشرقي "
    long_title = (words * 12)[:400]
    assert len(long_title) == 400
    seed(conn, ch, title=long_title)
    assert drain(conn, ch).messages == 1
    (msg,) = smtp.received()
    subject = decoded_subject(msg)
    assert len(subject) <= 150 and subject.endswith("…")
    head = subject.split("] ", 1)[1].rstrip("…")
    assert long_title.startswith(head) and head.endswith(tuple(words.split()))  # cut between whole words
    assert all(len(line) <= 998 for line in msg.as_bytes().split(b"\n"))
    assert long_title in msg.get_body(("plain",)).get_content()  # the body keeps the whole headline


def test_crlf_in_feed_text_never_reaches_a_header(tmp_path, smtp):
    conn = open_state(tmp_path / "s.db")
    ch = {"mail": ChannelSettings(url=smtp.url(), **FAST)}
    hostile = "قسد تتقدم\r\nBcc: victim@evil.example\r\nX-Injected: yes\n\rSubject: spoofed"
    seed(conn, ch, title=hostile)
    assert drain(conn, ch).messages == 1
    (msg,) = smtp.received()
    assert msg["Bcc"] is None and msg["X-Injected"] is None
    assert len(msg.get_all("Subject")) == 1
    assert smtp.envelopes == [("monitor@example.org", ["analyst@example.org"])]  # no smuggled recipient
    subject = decoded_subject(msg)
    assert "\r" not in subject and "\n" not in subject and "Bcc: victim@evil.example" in subject


def test_smtp_down_then_up_loses_nothing(tmp_path):
    down = Server()                    # port chosen, nothing listening yet
    conn = open_state(tmp_path / "s.db")
    ch = {"mail": ChannelSettings(url=down.url(), **FAST)}
    seed(conn, ch, n=2)
    first = drain(conn, ch, timeout=0.5)
    assert first.sent == 0 and first.failed >= 1 and first.dead == 0 and first.pending == 4
    row = conn.execute("SELECT state, attempts, last_error FROM outbox ORDER BY id LIMIT 1").fetchone()
    assert row["state"] == "pending" and row["attempts"] >= 1 and row["last_error"]
    down.start()
    try:
        second = drain(conn, ch)
        assert (second.sent, second.messages, second.pending) == (4, 2, 0)
        titles = sorted(decoded_subject(m) for m in down.received())
        assert len(titles) == 2 and any(TITLE in t for t in titles) and any(OTHER[0][0] in t for t in titles)
    finally:
        down.stop()


def test_4xx_is_retried_then_delivered_once(tmp_path, smtp):
    smtp.data_replies = ["451 4.3.0 try again later", "421 4.7.0 too busy"]
    conn = open_state(tmp_path / "s.db")
    ch = {"mail": ChannelSettings(url=smtp.url(), max_attempts=2, **FAST)}
    seed(conn, ch)
    report = drain(conn, ch)
    assert report.failed == 2 and report.dead == 0 and report.messages == 1
    assert len(smtp.received()) == 1 and smtp.data_replies == []
    row = conn.execute("SELECT state, attempts FROM outbox ORDER BY id LIMIT 1").fetchone()
    assert (row["state"], row["attempts"]) == ("sent", 3)  # 4xx is transient: max_attempts does not apply


def test_550_goes_dead_is_listed_and_can_be_requeued(tmp_path, smtp):
    smtp.rcpt_reply = "550 5.1.1 mailbox unavailable"
    conn = open_state(tmp_path / "s.db")
    ch = {"mail": ChannelSettings(url=smtp.url(), max_attempts=3, **FAST)}
    seed(conn, ch)
    report = drain(conn, ch)
    assert report.dead == 2 and report.sent == 0 and report.failed == 2  # 2 retries, then dead (2 rows)
    deliveries = [d for a in list_alerts(conn) for d in a["deliveries"]]
    assert len(deliveries) == 2
    assert all(d["state"] == "dead" and d["attempts"] == 3 and "SMTP 550" in d["last_error"] for d in deliveries)
    assert all("secret" not in d["last_error"] for d in deliveries)
    assert smtp.received() == []
    # the mailbox is fixed; the operator re-queues (monitor alerts retry ID) and it goes out
    smtp.rcpt_reply = None
    assert all(retry_dead(conn, d["outbox_id"]) for d in deliveries)
    again = drain(conn, ch)
    assert (again.sent, again.messages) == (2, 1) and len(smtp.received()) == 1
