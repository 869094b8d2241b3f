"""Several daemon instances on one PostgreSQL state: real ``monitor run`` processes.

Two processes share one database (started by the suite, tests/pgserver.py)
and one loopback feed server. Nothing is mocked: leases are rows in the
database, the processes get real signals, and the feed server counts every
request it answers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ROOT, SMTP_PASSWORD, FeedServer, corpus_articles, rss_feed

from monitor.state import SCHEMA_VERSION, open_readonly

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="POSIX signals")


class Instance:
    """One ``python -m monitor run`` process, its output collected in a file."""

    def __init__(self, config: Path, log: Path) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "STATE_DIRECTORY")}
        env["SMTP_PASSWORD"] = SMTP_PASSWORD
        self.log_path = log
        self._log = log.open("w")
        self.proc = subprocess.Popen([sys.executable, "-m", "monitor", "run", "--config", str(config)],
                                     stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=60)
        self._log.close()
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self._log.close()


@pytest.fixture
def instances():
    started: list[Instance] = []

    def start(config: Path, name: str) -> Instance:
        instance = Instance(config, config.parent / f"{name}.log")
        started.append(instance)
        return instance

    yield start
    for instance in started:
        instance.kill()


def wait_until(check: Callable[[], Any], *, timeout: float, what: str, logs: Callable[[], str] = lambda: "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout:.0f} s: {what}\n{logs()[-3000:]}")


def write_config(folder: Path, state: str, feeds: dict[str, str], *, interval: str = "10m",
                 lease: str = "120s", fetch_timeout: float = 10.0, channels: dict[str, Any] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump({
        "state": state,
        "rules": [str(ROOT / "rules")],
        "feeds": [{"name": name, "url": url, "interval": interval} for name, url in feeds.items()],
        "channels": channels or {"console": {"url": "console://"}},
        "fetch": {"timeout": fetch_timeout, "allow_private_addresses": True},
        "cluster": {"lease": lease, "heartbeat": "1s"},
        "log_level": "INFO",
    }, allow_unicode=True), encoding="utf-8")
    return path


def corpus_feed(index: int, outlet: str) -> str:
    stem, text = corpus_articles()[index % 5]
    return rss_feed([{"title": text.splitlines()[0][:120], "link": f"https://{outlet}.example/{stem}",
                      "description": text}])


def feed_rows(url: str) -> dict[str, Any]:
    db = open_readonly(url)
    try:
        return {row["name"]: row for row in db.all("SELECT name, last_poll_at, next_poll_at, lease_owner FROM feeds")}
    finally:
        db.close()


def test_two_instances_poll_each_feed_once_per_interval(tmp_path, postgres_url, instances):
    with FeedServer() as server:
        feeds = {f"f{i}": server.set(f"/f{i}.xml", corpus_feed(i, f"outlet{i}")) for i in range(12)}
        config = write_config(tmp_path, postgres_url, feeds)
        first, second = instances(config, "a"), instances(config, "b")
        started = time.monotonic()

        def all_polled() -> bool:
            rows = feed_rows(postgres_url) if _has_schema(postgres_url) else {}
            return len(rows) == 12 and all(r["last_poll_at"] and r["lease_owner"] is None for r in rows.values())

        wait_until(all_polled, timeout=60, what="every feed polled once", logs=lambda: first.log() + second.log())
        # Both instances scheduled every feed within their first 5 s; wait that out, so the
        # second one has asked for every lease (and been refused), then count the requests.
        time.sleep(max(0.0, started + 7.0 - time.monotonic()))
        assert {path: n for path, n in server.hits.items()} == {f"/f{i}.xml": 1 for i in range(12)}
        assert first.stop() == 0 and second.stop() == 0
    db = open_readonly(postgres_url)
    try:
        owners = {row["owner"] for row in db.all("SELECT lease_owner AS owner FROM feeds")}
        alive = db.all("SELECT id FROM instances WHERE stopped IS NULL")
    finally:
        db.close()
    assert owners == {None} and not alive, "a clean stop releases the leases and says so"


def test_an_instance_killed_mid_poll_loses_its_feeds_to_the_next_one(tmp_path, postgres_url, instances):
    """On one host a dead instance's leases are taken back at once (its pid is gone); across hosts
    they expire (``test_state_backends``: leases and reaping)."""
    with FeedServer() as server:
        # Slow answers keep the feeds leased while their poll runs.
        feeds = {f"f{i}": server.set(f"/f{i}.xml", corpus_feed(i, f"o{i}"), delay=4.0) for i in range(4)}
        config = write_config(tmp_path, postgres_url, feeds, lease="8s", fetch_timeout=6.0)
        first = instances(config, "a")
        wait_until(lambda: _has_schema(postgres_url) and len({
            r["lease_owner"] for r in feed_rows(postgres_url).values() if r["lease_owner"]}) == 1
            and all(r["lease_owner"] for r in feed_rows(postgres_url).values())
            and len(feed_rows(postgres_url)) == 4,
            timeout=30, what="the first instance holds every feed's lease", logs=first.log)
        first.kill()  # SIGKILL in the middle of its polls: nothing of them was committed
        killed_at = time.time()
        second = instances(config, "b")
        rows = wait_until(lambda: (r := feed_rows(postgres_url)) and all(x["last_poll_at"] for x in r.values()) and r,
                          timeout=60, what="the second instance polls the feeds", logs=second.log)
        assert all(r["last_poll_at"] >= killed_at for r in rows.values())
        assert all(server.hits[f"/f{i}.xml"] == 2 for i in range(4)), server.hits
        assert second.stop() == 0
    db = open_readonly(postgres_url)
    try:
        assert db.scalar("SELECT count(*) FROM items") == 4
        lease_until = db.scalar("SELECT min(lease_until) FROM feeds")
    finally:
        db.close()
    assert lease_until is None


def test_the_same_story_on_feeds_polled_by_different_instances_is_one_story(tmp_path, postgres_url, instances):
    stem, text = corpus_articles()[0]
    with FeedServer() as server:
        # Slow answers: both instances have started (and loaded the stories then known: none)
        # before either records its copy, so only the database can tell them it is one story.
        one = server.set("/one.xml", rss_feed([{"title": "قسد تسيطر على حقل العمر", "link": "https://one.example/a",
                                               "description": text}]), delay=3.0)
        two = server.set("/two.xml", rss_feed([{"title": "سباق على نفط شرق الفرات", "link": "https://two.example/b",
                                               "description": text}]), delay=3.0)
        # Each instance is configured with one of the two outlets: they cannot be the same process.
        first = instances(write_config(tmp_path / "a", postgres_url, {"one": one}), "a")
        second = instances(write_config(tmp_path / "b", postgres_url, {"two": two}), "b")
        wait_until(lambda: _has_schema(postgres_url) and len([r for r in feed_rows(postgres_url).values()
                                                              if r["last_poll_at"]]) == 2,
                   timeout=60, what="both outlets polled", logs=lambda: first.log() + second.log())
        assert first.stop() == 0 and second.stop() == 0
    db = open_readonly(postgres_url)
    try:
        assert db.scalar("SELECT count(*) FROM stories") == 1
        assert db.scalar("SELECT count(DISTINCT feed) FROM story_items") == 2
        assert db.scalar("SELECT sources FROM stories") == 2
    finally:
        db.close()


def _has_schema(url: str) -> bool:
    db = open_readonly(url)
    try:
        return db.schema_version() == SCHEMA_VERSION
    except Exception:  # noqa: BLE001 - the first instance may still be migrating
        return False
    finally:
        db.close()


def _message_ids(smtp) -> list[str]:
    return [str(m["Message-ID"]) for m in smtp.received()]


def test_every_story_is_mailed_once_though_two_instances_deliver(tmp_path, postgres_url, instances, smtp_server):
    with FeedServer() as server:
        feeds = {f"f{i}": server.set(f"/f{i}.xml", corpus_feed(i, f"outlet{i}")) for i in range(5)}
        config = write_config(tmp_path, postgres_url, feeds, channels={"mail": {"url": smtp_server.mailto()}})
        first, second = instances(config, "a"), instances(config, "b")

        def all_sent() -> bool:
            if not _has_schema(postgres_url):
                return False
            db = open_readonly(postgres_url)
            try:
                stories = db.scalar("SELECT count(*) FROM stories")
                waiting = db.scalar("SELECT count(*) FROM outbox WHERE state <> 'sent'")
            finally:
                db.close()
            return stories == 5 and waiting == 0 and len(smtp_server.received()) >= 5

        wait_until(all_sent, timeout=90, what="five stories mailed", logs=lambda: first.log() + second.log())
        assert first.stop() == 0 and second.stop() == 0
    ids = _message_ids(smtp_server)
    assert len(ids) == 5 == len(set(ids)), "one message per story, none twice"


def test_an_instance_killed_while_mailing_loses_nothing(tmp_path, postgres_url, instances, smtp_server):
    with FeedServer() as server:
        feeds = {f"f{i}": server.set(f"/f{i}.xml", corpus_feed(i, f"outlet{i}")) for i in range(5)}
        config = write_config(tmp_path, postgres_url, feeds, lease="6s", fetch_timeout=5.0,
                              channels={"mail": {"url": smtp_server.mailto(), "min_interval": 1.0}})
        first = instances(config, "a")
        # One message a second: kill the first instance once it has mailed some, not all.
        wait_until(lambda: len(smtp_server.received()) >= 2, timeout=60, what="the first mails", logs=first.log)
        first.kill()
        second = instances(config, "b")

        def all_sent() -> bool:
            db = open_readonly(postgres_url)
            try:
                return bool(db.scalar("SELECT count(*) FROM outbox WHERE state <> 'sent'") == 0
                            and db.scalar("SELECT count(*) FROM stories") == 5)
            finally:
                db.close()

        wait_until(all_sent, timeout=90, what="every story mailed after the kill", logs=second.log)
        assert second.stop() == 0
    subjects = [str(m["Subject"]) for m in smtp_server.received()]
    ids = _message_ids(smtp_server)
    assert len(set(ids)) == 5, "every story arrived"
    assert len(ids) <= 6, "at most the message in flight at the kill came twice"
    repeats = [str(m["Subject"]) for m in smtp_server.received() if ids.count(str(m["Message-ID"])) > 1]
    assert len(repeats) in (0, 2), subjects
    if repeats:  # the copy sent again says it may be a repeat
        assert not repeats[0].startswith("(مكرر؟)") and repeats[1].startswith("(مكرر؟)"), repeats
