"""Logging: one line per event, journald priorities, and secrets never written."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import apprise
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from monitor.service.logs import MASK, redact, setup_logging, under_journald

BOT_TOKEN = "7351234567:AAFq3kP9xZ_wd-84hQv2LmNoPqRsTuVwXyZ1"
SMTP_PASSWORD = "S3cr3t-P@ss/w0rd!x"


@pytest.fixture(autouse=True)
def _logging_restored(restore_logging):
    """Every test here calls setup_logging: undo it (the fixture is in conftest)."""
    yield


class _Capture(logging.Handler):
    """Keeps every record, formatted as a plain handler would write it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


class _FakeBotApi(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps({"ok": True, "result": {"message_id": 1}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Auth:
    def __call__(self, server, session, envelope, mechanism, auth_data):
        ok = auth_data.login == b"alert" and auth_data.password == SMTP_PASSWORD.encode()
        return AuthResult(success=ok)


class _Sink:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope.content)
        return "250 OK"


def test_apprise_debug_output_never_contains_the_bot_token_or_smtp_password(monkeypatch):
    """reliability-findings C.24: apprise logs the bot URL at DEBUG."""
    # monitor.alerts.deliver, once imported, taps the apprise logger and drops its DEBUG
    # records (a second line of defence). Take that tap off here so the dangerous
    # record really reaches the handlers and the redaction filter is what is tested.
    deliver = sys.modules.get("monitor.alerts.deliver")
    apprise_logger = logging.getLogger("apprise")
    if deliver is not None:
        monkeypatch.setattr(apprise_logger, "filters",
                            [f for f in apprise_logger.filters if f is not getattr(deliver, "_TAP", None)])
    out = io.StringIO()
    setup_logging("DEBUG", journald=False, stream=out, secrets=lambda: [BOT_TOKEN, SMTP_PASSWORD])
    capture = _Capture()
    capture.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    logging.getLogger().addHandler(capture)
    setup_logging("DEBUG", journald=False, stream=out, secrets=lambda: [BOT_TOKEN, SMTP_PASSWORD])

    bot = ThreadingHTTPServer(("127.0.0.1", 0), _FakeBotApi)
    threading.Thread(target=bot.serve_forever, daemon=True).start()
    sink = _Sink()
    smtp_port = _free_port()
    smtp = Controller(sink, hostname="127.0.0.1", port=smtp_port, authenticator=_Auth(), auth_require_tls=False)
    smtp.start()
    try:
        from apprise.plugins.telegram import NotifyTelegram
        monkeypatch.setattr(NotifyTelegram, "notify_url", f"http://127.0.0.1:{bot.server_address[1]}/bot")
        ap = apprise.Apprise()
        assert ap.add(f"tgram://{BOT_TOKEN}/123456789")
        from urllib.parse import quote
        assert ap.add(f"mailto://alert:{quote(SMTP_PASSWORD, safe='')}@127.0.0.1:{smtp_port}"
                      f"?mode=insecure&from=alert@example.org&to=ops@example.org")
        assert bool(ap.notify(title="تنبيه", body="البوكمال"))
        logging.getLogger("monitor.test").debug("channel url %s", f"tgram://{BOT_TOKEN}/1")
    finally:
        smtp.stop()
        bot.shutdown()
        bot.server_close()

    assert sink.messages, "the email should have been delivered"
    written = out.getvalue() + "\n".join(capture.lines)
    assert "Telegram POST URL" in written  # the dangerous DEBUG record was produced...
    assert any(r.startswith("apprise") for r in capture.lines)
    for secret in (BOT_TOKEN, BOT_TOKEN.split(":")[1], SMTP_PASSWORD, quote(SMTP_PASSWORD, safe="")):
        assert secret not in written  # ...and redacted on every handler
    assert MASK in written


@pytest.mark.parametrize("raw, leaked", [
    ("POST https://api.telegram.org/bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/sendMessage",
     "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"),
    ("connecting to mailto://alerts:hunter2hunter@smtp.example.org:587", "hunter2hunter"),
    ("smtps://u:p%40ss@w0rd@mail.example.org/x", "w0rd"),
    ("mailto://smtp.example.org?user=a&pass=topsecret99&to=b", "topsecret99"),
    ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.abc", "eyJhbGciOiJIUzI1NiJ9"),
])
def test_generic_secret_shapes_are_masked_without_configuration(raw, leaked):
    assert leaked not in redact(raw, secrets=())
    assert MASK in redact(raw, secrets=())


def test_configured_secret_and_its_url_encoded_form_are_masked():
    text = "password=p@ss word/1 and url-encoded p%40ss%20word%2F1"
    cleaned = redact(text, secrets=["p@ss word/1"])
    assert "p@ss word/1" not in cleaned and "p%40ss%20word%2F1" not in cleaned


def test_short_secrets_and_ordinary_text_are_left_alone():
    text = "polled 12 feeds at 12:30:05, 3 alerts for البوكمال https://example.org/a?id=5"
    assert redact(text, secrets=["a", "12"]) == text


def test_journald_lines_carry_syslog_priority_and_no_timestamp():
    out = io.StringIO()
    setup_logging("DEBUG", journald=True, stream=out)
    log = logging.getLogger("monitor.x")
    log.error("boom")
    log.warning("hmm")
    log.info("fine")
    log.debug("detail")
    assert out.getvalue().splitlines() == [
        "<3>monitor.x: boom", "<4>monitor.x: hmm", "<6>monitor.x: fine", "<7>monitor.x: detail"]


def test_one_line_per_event_even_for_tracebacks_and_multiline_messages():
    out = io.StringIO()
    setup_logging("INFO", journald=False, stream=out, secrets=lambda: ["tok-en-value"])
    log = logging.getLogger("monitor.y")
    log.info("first\nsecond")
    try:
        raise RuntimeError("failed with tok-en-value\ninside")
    except RuntimeError:
        log.exception("poll failed")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].endswith("INFO monitor.y: first\\nsecond")
    assert "Traceback" in lines[1] and "RuntimeError" in lines[1]
    assert "tok-en-value" not in out.getvalue()


def test_calling_setup_twice_does_not_duplicate_output():
    out = io.StringIO()
    setup_logging("INFO", journald=True, stream=out)
    setup_logging("INFO", journald=True, stream=out)
    logging.getLogger("monitor.z").warning("once")
    assert out.getvalue() == "<4>monitor.z: once\n"
    mine = [h for h in logging.getLogger().handlers if getattr(h, "_monitor_handler", False)]
    assert len(mine) == 1


def test_level_is_applied_and_bad_level_falls_back_to_info():
    out = io.StringIO()
    setup_logging("warning", journald=True, stream=out)
    logging.getLogger("monitor.l").info("hidden")
    assert out.getvalue() == ""
    setup_logging("nonsense", journald=True, stream=out)
    logging.getLogger("monitor.l").info("shown")
    assert out.getvalue() == "<6>monitor.l: shown\n"


def test_bad_format_arguments_and_broken_secret_source_do_not_crash():
    out = io.StringIO()

    def broken() -> list[str]:
        raise OSError("credentials dir gone")

    setup_logging("INFO", journald=True, stream=out, secrets=broken)
    logging.getLogger("lib").info("%d items", "not-a-number")
    assert "unformattable" in out.getvalue()


def test_journal_stream_detection_compares_device_and_inode(tmp_path, monkeypatch):
    f = open(tmp_path / "err", "w")
    st = os.fstat(f.fileno())
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
    assert under_journald(f)
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino + 1}")
    assert not under_journald(f)
    monkeypatch.setenv("JOURNAL_STREAM", "junk")
    assert not under_journald(f)
    monkeypatch.delenv("JOURNAL_STREAM")
    assert not under_journald(f)
    f.close()
