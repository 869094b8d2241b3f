"""The CLI commands a user runs next to the daemon: status, feeds, alerts, notify-test, feeds import."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from conftest import LOOPBACK_FETCH, FeedServer, rss_feed

from monitor.cli import main

ROOT = Path(__file__).resolve().parent.parent

ITEM = {"title": "قسد تتقدم نحو البوكمال", "link": "https://a.example/news/1",
        "description": "قالت قوات سوريا الديمقراطية إنها تتقدم نحو مدينة البوكمال."}


@pytest.fixture
def configured(tmp_path, feed_server: FeedServer):
    feed_server.set("/a.xml", rss_feed([ITEM]))
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "state_path": "state.sqlite3",
        "rules": [str(ROOT / "rules")],
        "feeds": [{"name": "a", "url": feed_server.url("/a.xml")},
                  {"name": "broken", "url": feed_server.url("/missing.xml")}],
        "channels": {"console": {"url": "console://"},
                     # backoff beyond run --once's delivery wait: one attempt, then it waits
                     "mail": {"url": "mailto://127.0.0.1:9?mode=insecure&from=a@b.org&to=c@d.org",
                              "backoff_initial": 60}},
        "fetch": LOOPBACK_FETCH,
    }), encoding="utf-8")
    return config


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_status_feeds_and_alerts_after_a_cycle(configured):
    result = invoke("run", "--once", "--config", str(configured))
    assert result.exit_code == 0, result.output
    assert "2 feeds polled (1 failed" in result.output
    assert "البوكمال" in result.output  # the console channel printed the alert

    status = invoke("status", "--config", str(configured))
    assert status.exit_code == 0
    assert "2 known, 1 failing" in status.output
    assert "dead" in status.output

    feeds = invoke("feeds", "--config", str(configured))
    assert "a: ok" in feeds.output
    assert "broken: FAILING (1 in a row)" in feeds.output and "404" in feeds.output

    alerts = invoke("alerts", "--config", str(configured), "--json")
    rows = [json.loads(line) for line in alerts.output.splitlines()]
    assert rows and all(r["rule_id"] for r in rows)
    deliveries = {d["channel"]: d for r in rows for d in r["deliveries"]}
    assert deliveries["console"]["state"] == "sent"
    # Nothing listens on port 9: a transient error, so the row waits for a retry, with the reason.
    assert deliveries["mail"]["state"] == "pending" and "refused" in deliveries["mail"]["last_error"]

    # A delivery that failed for good can be queued again from the CLI.
    from monitor.state import connect

    dead_id = deliveries["mail"]["outbox_id"]
    conn = connect(configured.parent / "state.sqlite3")
    conn.execute("UPDATE outbox SET state = 'dead' WHERE id = ?", (dead_id,))
    conn.close()
    retried = invoke("alerts", "--config", str(configured), "retry", str(dead_id))
    assert retried.exit_code == 0 and "queued again" in retried.output
    again = invoke("alerts", "--config", str(configured), "retry", str(dead_id))
    assert again.exit_code == 1


def test_status_before_the_first_run_says_so(configured):
    result = CliRunner().invoke(main, ["status", "--config", str(configured)])
    assert result.exit_code == 1
    assert "no state database yet" in result.output


def test_notify_test_console_and_unknown_channel(configured):
    ok = invoke("notify-test", "--config", str(configured), "console")
    assert ok.exit_code == 0 and "test message sent to console" in ok.output
    unknown = CliRunner().invoke(main, ["notify-test", "--config", str(configured), "telegarm"])
    assert unknown.exit_code == 2 and "no channel named 'telegarm'" in unknown.output
    down = CliRunner().invoke(main, ["notify-test", "--config", str(configured), "mail"])
    assert down.exit_code == 1 and "mail" in down.output


def test_feeds_import_writes_a_feed_file_the_config_can_include(tmp_path, configured):
    opml = tmp_path / "list.opml"
    opml.write_text("""<?xml version="1.0"?><opml version="2.0"><head><title>x</title></head><body>
      <outline text="عنب بلدي" xmlUrl="https://www.enabbaladi.net/feed/"/>
      <outline text="ftp" xmlUrl="ftp://example.org/feed"/></body></opml>""", encoding="utf-8")
    result = invoke("feeds", "--config", str(configured), "import", str(opml))
    assert result.exit_code == 0, result.output
    written = tmp_path / "feeds.d" / "imported.yaml"
    feeds = yaml.safe_load(written.read_text(encoding="utf-8"))
    assert [f["url"] for f in feeds] == ["https://www.enabbaladi.net/feed/"]

    data = yaml.safe_load(configured.read_text(encoding="utf-8"))
    data["feed_files"] = ["feeds.d/*.yaml"]
    configured.write_text(yaml.safe_dump(data), encoding="utf-8")
    check = invoke("check", "--config", str(configured))
    assert check.exit_code == 0 and "3 feeds" in check.output


def test_missing_config_is_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.delenv("MONITOR_CONFIG", raising=False)
    monkeypatch.setattr("monitor.config.DEFAULT_CONFIG_PATHS", (tmp_path / "nope.yaml",))
    result = CliRunner().invoke(main, ["check"])
    assert result.exit_code == 2 and "no config file" in result.output


def test_status_on_a_corrupt_state_file_is_a_clear_error(configured):
    (configured.parent / "state.sqlite3").write_bytes(b"this is not a database" * 100)
    result = CliRunner().invoke(main, ["status", "--config", str(configured)])
    assert result.exit_code == 1
    assert "cannot use state database" in result.output and "Traceback" not in result.output


# -- `monitor rules test URL` reads a feed through the Fetcher (issue 10) -----------------

def test_rules_test_url_fetches_like_the_daemon(tmp_path, feedfarm):
    """The default guard refuses loopback; with a config that allows it, the daemon's caps
    apply: a gzip bomb is cut at fetch.max_bytes, a slow drip at fetch.timeout."""
    from conftest import run_cli, run_measured
    from feedfarm import HOSTILE, rss

    good = feedfarm.add("/good.xml", rss().encode())
    bomb = feedfarm.add("/bomb.xml", **HOSTILE["gzip_bomb"]())
    drip = feedfarm.add("/drip.xml", **HOSTILE["drip"]())
    rules = str(ROOT / "rules")
    env = {"MONITOR_CONFIG": str(tmp_path / "absent.yaml")}  # no config: the defaults

    refused = run_cli("rules", "test", "--rules", rules, good, env=env)
    assert refused.returncode == 2 and "forbidden_target" in refused.stderr, refused.stderr
    assert feedfarm.hits("/good.xml") == 0

    config = tmp_path / "config.yaml"
    config.write_text("fetch:\n  allow_private_addresses: true\n  timeout: 2\n  max_bytes: 1048576\n",
                      encoding="utf-8")
    env = {"MONITOR_CONFIG": str(config)}
    ok = run_cli("rules", "test", "--rules", rules, "--format", "json", good, env=env)
    assert ok.returncode == 0, ok.stderr
    results = [json.loads(line) for line in ok.stdout.splitlines()]
    assert results and all(r["id"].startswith("guid:") for r in results) and any(r["rules"] for r in results)

    result, peak_mb = run_measured("rules", "test", "--rules", rules, bomb, tmp=tmp_path, env=env)
    assert result.returncode == 2 and "too_large" in result.stderr, result.stderr
    print(f"\nrules test on a 64 MiB gzip bomb: refused, peak RSS {peak_mb:.0f} MB")
    assert peak_mb < 200

    dripping = run_cli("rules", "test", "--rules", rules, drip, env=env, timeout=60)
    assert dripping.returncode == 2 and "timeout" in dripping.stderr, dripping.stderr
