"""No secret anywhere a user can see it: a channel that echoes the bot token or the SMTP password in its
error answers, seen through ``monitor run``, ``monitor alerts``, ``alerts --json``, ``notify-test`` and the
state file itself.

Real processes only: the CLI as a subprocess, the fake Bot API and aiosmtpd on loopback.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest
import yaml
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from conftest import SMTP_PASSWORD, FeedServer, free_port, rss_feed, run_cli
from fake_telegram import FakeTelegram

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "123456789:AAHsecretTOKENvalue_abcdefghijklmnop"


class EchoingSmtp:
    """Answers every DATA with a temporary error that quotes the login, password included."""

    async def handle_DATA(self, server, session, envelope):
        return f"451 4.3.0 temporary failure for monitor:{SMTP_PASSWORD} ({quote(SMTP_PASSWORD)})"


@pytest.fixture
def hostile(tmp_path: Path, feed_server: FeedServer):
    fake = FakeTelegram().start()
    fake.status_always = 401
    fake.description = f"Unauthorized: bot{TOKEN} was revoked (token {TOKEN.split(':')[1]})"
    port = free_port()
    smtp = Controller(EchoingSmtp(), hostname="127.0.0.1", port=port, auth_require_tls=False,
                      authenticator=lambda *a: AuthResult(success=True))
    smtp.start()
    feed_server.set("/f.xml", rss_feed([
        {"title": "قسد تتقدم نحو البوكمال", "link": "https://a.example/1", "description": "قالت قسد إنها تتقدم"},
        {"title": "داعش في الميادين", "link": "https://a.example/2", "description": "هجوم لداعش في الميادين"}]))
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "state_path": str(tmp_path / "state.sqlite3"), "rules": [str(ROOT / "rules")],
        "feeds": [{"name": "f", "url": feed_server.url("/f.xml")}],
        "channels": {
            "tg": {"url": "tgram://${TG_TOKEN}/-1001234", "backoff_initial": 60, "backoff_max": 60},
            "mail": {"url": f"mailto://monitor:${{SMTP_PASSWORD}}@127.0.0.1:{port}?mode=insecure"
                            "&from=monitor@example.org&to=analyst@example.org",
                     "backoff_initial": 60, "backoff_max": 60}},
    }), encoding="utf-8")
    env = {"TG_TOKEN": TOKEN, "MONITOR_TELEGRAM_API": fake.base}
    yield config, env, fake
    smtp.stop()
    fake.stop()


SECRETS = (TOKEN, TOKEN.split(":")[1], SMTP_PASSWORD, quote(SMTP_PASSWORD))


def test_no_command_output_and_no_stored_error_holds_a_secret(tmp_path, hostile):
    config, env, fake = hostile
    c = ["--config", str(config)]
    run = run_cli("run", "--once", *c, env=env)
    assert run.returncode == 0, run.stderr
    assert fake.rejected, "the fake must have been asked"
    outputs = {"run": run.stdout + run.stderr}
    for name, args in {"alerts": ("alerts", *c), "alerts --json": ("alerts", *c, "--json"),
                       "notify-test tg": ("notify-test", *c, "tg"), "notify-test mail": ("notify-test", *c, "mail"),
                       "status": ("status", *c)}.items():
        result = run_cli(*args, env=env)
        outputs[name] = result.stdout + result.stderr
    assert "tg=pending" in outputs["alerts"] and "auth: Telegram 401: Unauthorized" in outputs["alerts"]
    assert "mail=pending" in outputs["alerts"] and "SMTP 451 at DATA" in outputs["alerts"]
    assert "not delivered (auth): Telegram 401" in outputs["notify-test tg"]
    assert "not delivered (server_error): SMTP 451" in outputs["notify-test mail"]
    for name, text in outputs.items():
        for secret in SECRETS:
            assert secret not in text, f"{name} shows a secret"
        assert "Traceback" not in text, name
    stored = (tmp_path / "state.sqlite3").read_bytes()
    for wal in tmp_path.glob("state.sqlite3-wal"):
        stored += wal.read_bytes()
    for secret in SECRETS:
        assert secret.encode() not in stored, "the state file holds a secret"
    assert b"[REDACTED]" in stored  # the errors were stored, masked
