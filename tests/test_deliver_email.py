"""Email end to end: the native SMTP sender against a real aiosmtpd server on 127.0.0.1.

The server's handler answers scripted SMTP codes (451 for a while or forever
for one message, 550 on RCPT or on DATA), can be started only after the first
attempt failed (SMTP down, then up), and speaks STARTTLS or implicit TLS with
a certificate made for the test. Every assertion reads what the server
actually received. Long waits run on a virtual clock.
"""

from __future__ import annotations

import asyncio
import email
import email.header
import email.policy
import shutil
import ssl
import subprocess
import threading

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from conftest import free_port
from fake_telegram import VirtualClock

from monitor.alerts.deliver import Deliverer, send_test_message
from monitor.alerts.render import FSI, PDI, Renderer
from monitor.alerts.route import plan_alerts
from monitor.alerts.senders import FailureReason
from monitor.alerts.senders.email import classify_reply, parse_mailto
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
        self.refuse: tuple[str, str] | None = None  # (text in the message, reply): that message, every time
        self.refused = 0
        self.logins: list[tuple[bytes, bytes]] = []
        self.raw: list[bytes] = []          # each accepted message as it came over the wire
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
            if self.refuse is not None:
                parsed = email.message_from_bytes(envelope.original_content or envelope.content,
                                                  policy=email.policy.default)
                if self.refuse[0] in decoded_subject(parsed) + parsed.get_body(("plain",)).get_content():
                    self.refused += 1
                    return self.refuse[1]
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            self.raw.append(envelope.original_content or envelope.content)
            self.messages.append(email.message_from_bytes(envelope.original_content or envelope.content,
                                                          policy=email.policy.default))
        return "250 OK"

    def _auth(self, server, session, envelope, mechanism, auth_data):
        self.logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == b"secret", handled=False)  # handled=False: answer 535

    def start(self, **tls) -> Server:
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port, authenticator=self._auth,
                                     auth_require_tls=bool(tls.get("require_starttls")), auth_required=False, **tls)
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


def drain(conn, channels, timeout=10.0, clock=None):
    if clock is None:
        return asyncio.run(Deliverer(conn, channels).drain(timeout=timeout))
    return asyncio.run(Deliverer(conn, channels, clock=clock.time, sleep=clock.sleep).drain(timeout=timeout))


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
    assert msg["Content-Language"] == "ar" and msg["Message-ID"].startswith("<story-1-1000.mail@")
    # the raw header is RFC 2047 encoded ASCII; decoded, it is exactly the rendered subject
    (raw,) = smtp.raw
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert head.isascii() and all(len(line) <= 78 for line in head.split(b"\r\n"))  # encoded and folded
    raw_subject = b"\r\n".join(head.split(b"Subject:", 1)[1].split(b"\r\nFrom:", 1)[:1])
    assert b"=?utf-8?" in raw_subject.lower()
    subject = decoded_subject(msg)
    assert subject == expected.subject and TITLE in subject and len(subject) <= 150
    assert FSI not in subject and PDI not in subject
    assert msg.get_content_type() == "multipart/alternative"
    text_part, html_part = msg.get_body(("plain",)), msg.get_body(("html",))
    assert text_part.get_content_charset() == html_part.get_content_charset() == "utf-8"
    html = html_part.get_content()
    assert '<html dir="rtl" lang="ar">' in html and 'href="https://news.example/omar?id=1&amp;x=2"' in html
    assert html.index("Fighting for the al-Omar oil field") < html.index("جبهة دير الزور")  # critical first
    # the text part is our email.txt.j2, not an HTML-to-text conversion
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
    ch = {"mail": ChannelSettings(url=smtp.url(), give_up={"server_error": {"attempts": 1, "deadline": 0}}, **FAST)}
    seed(conn, ch)
    report = drain(conn, ch)
    assert report.failed == 2 and report.dead == 0 and report.messages == 1
    assert len(smtp.received()) == 1 and smtp.data_replies == []
    row = conn.execute("SELECT state, attempts, failures FROM outbox ORDER BY id LIMIT 1").fetchone()
    # nothing else was delivered meanwhile, so nothing showed the failures were this message's own
    assert tuple(row) == ("sent", 3, 2)


def test_follow_ups_thread_under_the_storys_first_email(tmp_path, smtp):
    conn = open_state(tmp_path / "s.db")
    ch = {"mail": ChannelSettings(url=smtp.url(), **FAST)}
    idx = StoryIndex()
    item = Item("عنب بلدي", "guid:0", TITLE, BODY, link="https://news.example/omar")
    front = RuleMatch("front", "جبهة دير الزور", "", "info", (), None, ())
    oil = RuleMatch("omar", "Fighting for the al-Omar oil field", "", "critical", (), None, ())
    routing = RoutingSettings(followup_after=0)
    with conn.transaction():
        plan_alerts(conn, item, idx.assign(conn, item, 1000.0), [front], ch, routing, 1000.0)
    drain(conn, ch)
    edited = Item(item.feed, item.key, item.title, BODY + " ومعارك", link=item.link)
    copy = Item("الجزيرة", "guid:1", TITLE, BODY, link="https://other.example/omar")
    with conn.transaction():
        plan_alerts(conn, edited, idx.assign(conn, edited, 2000.0), [front, oil], ch, routing, 2000.0)
    with conn.transaction():
        plan_alerts(conn, copy, idx.assign(conn, copy, 3000.0), [front, oil], ch, routing, 3000.0)
    assert drain(conn, ch).messages == 2
    first, update, followup = smtp.received()
    root = first["Message-ID"]
    assert root.startswith("<story-1-1000.mail@") and root.endswith("@example.org>")
    assert first["In-Reply-To"] is None and first["References"] is None
    for later in (update, followup):
        assert later["In-Reply-To"] == root and later["References"] == root
        assert later["Message-ID"] not in (root, None)
        assert decoded_subject(later) == "Re: " + decoded_subject(first)
    assert "Fighting for the al-Omar oil field" in update.get_body(("plain",)).get_content()
    assert first["Auto-Submitted"] == "auto-generated"
    kinds = conn.execute("SELECT kind, sent_as, message_id FROM outbox ORDER BY id").fetchall()
    assert [tuple(k[:2]) for k in kinds] == [("alert", "message"), ("alert", "reply"), ("followup", "reply")]
    assert kinds[0][2] == root


def test_4xx_forever_on_one_message_goes_dead_after_its_deadline_and_the_rest_arrive(tmp_path, smtp):
    clock = VirtualClock()
    smtp.refuse = ("خبر رقم 3 ", "451 4.7.1 greylisted, try again later")
    conn = open_state(tmp_path / "s.db")
    ch = {"mail": ChannelSettings(url=smtp.url(), backoff_initial=5, backoff_max=60,
                                  give_up={"server_error": {"attempts": 1000, "deadline": "10m"}})}
    idx = StoryIndex()
    for i in range(10):
        item = Item(f"outlet{i}", f"guid:{i}", f"خبر رقم {i} عن قسد", f"تفاصيل رقم {i} عن معارك قسد",
                    link=f"https://news.example/{i}")
        with conn.transaction():
            plan_alerts(conn, item, idx.assign(conn, item, 1000.0 + i),
                        [RuleMatch("front", "جبهة", "", "info", (), None, ())], ch, RoutingSettings(), 1000.0 + i)
    report = drain(conn, ch, timeout=3600, clock=clock)
    got = [decoded_subject(m) for m in smtp.received()]
    assert [int(s.split("خبر رقم ")[1].split(" ")[0]) for s in got] == [0, 1, 2, 4, 5, 6, 7, 8, 9]
    assert report.dead == 1 and report.sent == 9
    row = conn.execute("SELECT state, reason, last_error, first_failed_at FROM outbox WHERE state = 'dead'").fetchone()
    assert row["reason"] == "server_error" and "451" in row["last_error"]
    assert clock.time() - row["first_failed_at"] >= 600       # dead after its deadline, not before
    assert 5 <= smtp.refused <= 30                              # retried with backoff meanwhile


def test_550_on_rcpt_is_the_channels_problem_nothing_dies(tmp_path, smtp):
    smtp.rcpt_reply = "550 5.1.1 mailbox unavailable"
    conn = open_state(tmp_path / "s.db")
    ch = {"mail": ChannelSettings(url=smtp.url(), give_up={"auth": {"attempts": 1, "deadline": 0}}, **FAST)}
    seed(conn, ch, n=2)
    report = drain(conn, ch, timeout=1.0)
    assert report.dead == 0 and report.sent == 0 and report.failed >= 2
    deliveries = [d for a in list_alerts(conn) for d in a.deliveries]
    tried = [d for d in deliveries if d.failures]
    assert tried and all(d.state == "pending" and d.reason == "auth" and "SMTP 550 at RCPT" in d.last_error
                         for d in tried)
    assert all("secret" not in (d.last_error or "") for d in deliveries)
    assert smtp.received() == []
    smtp.rcpt_reply = None   # the mailbox is fixed: everything goes out, nothing was lost
    again = drain(conn, ch)
    assert (again.sent, again.messages) == (4, 2) and len(smtp.received()) == 2


def test_550_on_one_messages_data_goes_dead_is_listed_and_can_be_requeued(tmp_path, smtp):
    smtp.refuse = (TITLE, "550 5.7.1 message content rejected")
    conn = open_state(tmp_path / "s.db")
    ch = {"mail": ChannelSettings(url=smtp.url(), **FAST)}
    seed(conn, ch, n=2)
    report = drain(conn, ch)
    assert report.dead == 2 and report.sent == 2 and report.messages == 1   # two rules, one message, dead
    assert smtp.refused == 3                                                  # bad_request: 3 attempts
    dead = [d for a in list_alerts(conn) for d in a.deliveries if d.state == "dead"]
    assert len(dead) == 2 and all(d.reason == "bad_request" and "SMTP 550 at DATA" in d.last_error for d in dead)
    smtp.refuse = None
    assert all(retry_dead(conn, d.outbox_id) for d in dead)
    again = drain(conn, ch)
    assert (again.sent, again.messages) == (2, 1) and len(smtp.received()) == 2


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: no certificate for the TLS tests")
    folder = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(folder / "key.pem"),
                    "-out", str(folder / "cert.pem")], check=True, capture_output=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    return context


@pytest.mark.parametrize("mode", ["starttls", "ssl"])
def test_starttls_and_implicit_tls_with_login_from_the_url(tmp_path, certificate, mode):
    tls = {"tls_context": certificate, "require_starttls": True} if mode == "starttls" else {"ssl_context": certificate}
    server = Server().start(**tls)
    try:
        scheme = "mailtos" if mode == "starttls" else "mailto"
        url = (f"{scheme}://monitor:secret@127.0.0.1:{server.port}?mode={mode}&verify=no"
               f"&from=monitor@example.org&to=analyst@example.org")
        conn = open_state(tmp_path / "s.db")
        ch = {"mail": ChannelSettings(url=url, **FAST)}
        seed(conn, ch)
        assert drain(conn, ch).messages == 1
        assert len(server.received()) == 1 and server.logins == [(b"monitor", b"secret")]
        # verification on (the default): the self-signed certificate is refused, as it must be
        strict = ChannelSettings(url=url.replace("&verify=no", ""))
        with pytest.raises(Exception, match="not delivered \\(auth\\): SMTP TLS: certificate not trusted"):
            asyncio.run(send_test_message("mail", strict))
        wrong = ChannelSettings(url=url.replace("secret", "wrong-password"))
        with pytest.raises(Exception, match="not delivered \\(auth\\): SMTP 535") as err:
            asyncio.run(send_test_message("mail", wrong))
        assert "wrong-password" not in str(err.value)
    finally:
        server.stop()


def test_mailto_urls_parse_like_apprise():
    t = parse_mailto("mailtos://user%40example.org:p%40ss@smtp.example.org?to=a@x.org,b@x.org&name=رصد")
    assert (t.host, t.port, t.mode, t.user, t.password) == ("smtp.example.org", 587, "starttls", "user@example.org",
                                                           "p@ss")
    assert t.to == ("a@x.org", "b@x.org") and t.envelope_from == "user@example.org" and t.domain == "example.org"
    assert parse_mailto("mailto://relay.local/ops@x.org?from=m@x.org").to == ("ops@x.org",)
    assert parse_mailto("mailto://m:pw@h?mode=ssl&from=m@x.org").port == 465
    assert parse_mailto("mailto://h:2525?from=m@x.org").mode == "insecure"
    assert "p@ss" not in repr(t)
    for bad, why in [("mailto://h?from=m@x.org&pgp=yes", "unsupported"), ("mailto://h", "from="),
                     ("mailto://h?from=m@x.org&mode=tls", "mode must be"), ("mailto://?from=m@x.org", "SMTP server")]:
        with pytest.raises(ValueError, match=why):
            parse_mailto(bad)


@pytest.mark.parametrize("code, step, reason", [
    (451, "data", FailureReason.SERVER_ERROR), (421, "connect", FailureReason.SERVER_ERROR),
    (550, "data", FailureReason.BAD_REQUEST), (552, "data", FailureReason.TOO_LARGE),
    (550, "rcpt", FailureReason.AUTH), (553, "mail", FailureReason.AUTH), (535, "auth", FailureReason.AUTH),
])
def test_classify_smtp_replies(code, step, reason):
    assert classify_reply(code, "x", step=step) is reason
