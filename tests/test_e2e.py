"""The whole product as a user runs it: real CLI processes, a real HTTP feed
server, a real SMTP server, the default rule pack, the corpus articles.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from conftest import (
    SMTP_PASSWORD,
    FeedServer,
    SmtpSink,
    corpus_articles,
    rss_feed,
    run_cli,
)

ROOT = Path(__file__).resolve().parent.parent


def corpus_items() -> list[dict]:
    items = []
    for index, (stem, text) in enumerate(corpus_articles()):
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        title = lines[0][:120] if len(lines[0]) < 160 else f"تقرير {index}: " + lines[0][:80]
        items.append({"title": title, "link": f"https://news.example/articles/{stem}",
                      "description": "\n".join(lines[1:]) if len(lines) > 1 else lines[0]})
    return items


def write_config(tmp_path: Path, feeds: dict[str, str], smtp: SmtpSink, *, timeout: float = 5.0) -> Path:
    config = {
        "state_path": str(tmp_path / "state.sqlite3"),
        "rules": [str(ROOT / "rules")],
        "feeds": [{"name": name, "url": url} for name, url in feeds.items()],
        "channels": {"email": {"url": smtp.mailto()}},
        "fetch": {"timeout": timeout, "allow_private_addresses": True},  # feeds on 127.0.0.1
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


def summary(stdout: str) -> dict[str, int]:
    m = re.search(r"(\d+) feeds polled \((\d+) failed.*?(\d+) items seen \((\d+) new\), "
                  r"alerts: (\d+) new / (\d+) already sent", stdout)
    assert m, stdout
    keys = ("feeds", "failed", "items", "new_items", "alerts_new", "already_sent")
    return dict(zip(keys, map(int, m.groups()), strict=True))


@pytest.fixture
def corpus_feed(feed_server: FeedServer) -> str:
    return feed_server.set("/corpus.xml", rss_feed(corpus_items()))


def test_corpus_feed_alerts_by_email_once_then_nothing(tmp_path, feed_server, corpus_feed, smtp_server):
    config = write_config(tmp_path, {"corpus": corpus_feed}, smtp_server)

    first = run_cli("run", "--once", "--config", str(config))
    assert first.returncode == 0, first.stderr
    assert SMTP_PASSWORD not in first.stdout + first.stderr
    totals = summary(first.stdout)
    assert totals["feeds"] == 1 and totals["failed"] == 0
    assert totals["items"] == 5 and totals["new_items"] == 5
    messages = smtp_server.received()
    assert totals["alerts_new"] >= 5  # the broad front rule fires on every corpus article
    assert len(messages) == 5  # one email per story (the five corpus articles), listing every rule that fired
    assert re.search(r"; 5 messages delivered \(\d+ alerts\), 0 failed attempts, 0 dead, 0 waiting", first.stdout)

    items = {item["link"]: item for item in corpus_items()}
    seen_links = set()
    for message in messages:
        subject = str(message["subject"])
        assert "\n" not in subject and len(subject) <= 150
        text = message.get_body(("plain",)).get_content()
        html = message.get_body(("html",)).get_content()
        link = next(link for link in items if link in text)
        seen_links.add(link)
        # The Arabic headline survives RFC 2047 encoding exactly (maybe shortened, never garbled).
        headline = items[link]["title"]
        assert headline[:40] in subject or headline[:40] in text
        assert 'dir="rtl"' in html and link in html
    assert seen_links == set(items), "every corpus article alerted"

    # The Al-Bukamal article names the entity it matched.
    bukamal = next(m for m in messages if "002_" in m.get_body(("plain",)).get_content())
    assert "البوكمال" in bukamal.get_body(("plain",)).get_content()

    second = run_cli("run", "--once", "--config", str(config))
    assert second.returncode == 0, second.stderr
    again = summary(second.stdout)
    assert again["alerts_new"] == 0 and again["new_items"] == 0
    assert len(smtp_server.received()) == len(messages), "a second poll sends nothing"
    assert feed_server.hits["/corpus.xml"] == 2


def test_new_item_sends_exactly_one_alert_and_restart_sends_nothing(tmp_path, feed_server, smtp_server):
    items = corpus_items()[:2]
    url = feed_server.set("/f.xml", rss_feed(items))
    config = write_config(tmp_path, {"f": url}, smtp_server)
    assert run_cli("run", "--once", "--config", str(config)).returncode == 0
    before = len(smtp_server.received())
    assert before >= 2

    fresh = {"title": "قوات سوريا الديمقراطية تتقدم نحو البوكمال",
             "link": "https://news.example/articles/new-1",
             "description": "أعلنت قسد أنها تقدمت نحو مدينة البوكمال على الحدود السورية العراقية."}
    feed_server.set("/f.xml", rss_feed(items + [fresh]))
    result = run_cli("run", "--once", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert summary(result.stdout)["new_items"] == 1
    received = smtp_server.received()
    new_messages = received[before:]
    assert len(new_messages) >= 1
    assert all(fresh["link"] in m.get_body(("plain",)).get_content() for m in new_messages)
    # One message per (story, rule): the new article fires distinct rules, never the same one twice.
    subjects = [str(m["subject"]) for m in new_messages]
    assert len(subjects) == len(set(subjects))

    # A "restart" on the same state: nothing again.
    restart = run_cli("run", "--once", "--config", str(config))
    assert restart.returncode == 0
    assert len(smtp_server.received()) == len(received)


def test_broken_feeds_do_not_stop_the_others(tmp_path, feed_server, smtp_server):
    good = feed_server.set("/good.xml", rss_feed(corpus_items()[2:3]))
    feeds = {
        "good": good,
        "error500": feed_server.set("/500.xml", "boom", status=500, content_type="text/plain"),
        "html": feed_server.set("/page.html", "<!doctype html><html><body><h1>مرحبا</h1></body></html>",
                                content_type="text/html; charset=utf-8"),
        "slow": feed_server.set("/slow.xml", hang=True),
    }
    config = write_config(tmp_path, feeds, smtp_server, timeout=2.0)
    result = run_cli("run", "--once", "--config", str(config))
    assert result.returncode == 0, result.stderr
    totals = summary(result.stdout)
    assert totals["feeds"] == 4 and totals["failed"] == 3
    assert totals["alerts_new"] >= 1 and len(smtp_server.received()) == 1  # one story: one email

    # Each failure is reported clearly, per feed.
    health = run_cli("feeds", "--config", str(config))
    assert health.returncode == 0, health.stderr
    blocks = {b.split(":", 1)[0]: b for b in re.split(r"\n(?=\S)", health.stdout.strip())}
    assert blocks["good"].startswith("good: ok")
    assert "FAILING" in blocks["error500"] and "500" in blocks["error500"]
    assert "FAILING" in blocks["html"] and "not_feed" in blocks["html"]
    assert "FAILING" in blocks["slow"] and "timeout" in blocks["slow"]


def test_check_reports_config_errors_with_file_line_and_field(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(
        "rules: [%s]\nfeeds:\n  - name: a\n    url: ftp://example.org/feed\n  - name: b\n    url: https://x.org/f\n"
        "    intervall: 5m\n" % (ROOT / "rules"), encoding="utf-8")
    result = run_cli("check", "--config", str(config))
    assert result.returncode == 1
    assert f"{config}:4:10: feeds[0].url: " in result.stderr
    assert f"{config}:7:5: feeds[1].intervall: unknown key (did you mean 'interval'?)" in result.stderr
    assert "Traceback" not in result.stderr

    # `run` refuses the same config the same way, and exits non-zero.
    run = run_cli("run", "--once", "--config", str(config))
    assert run.returncode == 1 and "feeds[0].url" in run.stderr


def test_example_config_is_valid(tmp_path):
    example = (ROOT / "examples" / "config.yaml").read_text(encoding="utf-8")
    target = tmp_path / "config.yaml"
    target.write_text(example.replace("  - rules\n", f"  - {ROOT / 'rules'}\n"), encoding="utf-8")
    env = {"TELEGRAM_BOT_TOKEN": "123456:" + "A" * 35, "TELEGRAM_CHAT_ID": "-100123",
           "SMTP_USER": "u", "SMTP_PASSWORD": "p"}
    result = run_cli("check", "--config", str(target), env=env)
    assert result.returncode == 0, result.stderr
    missing = run_cli("check", "--config", str(target))
    assert missing.returncode == 1
    assert re.search(r"config.yaml:\d+:\d+: channels.telegram.url: \$\{TELEGRAM_BOT_TOKEN\} is not set",
                     missing.stderr), \
        missing.stderr
