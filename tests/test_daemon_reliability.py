"""Issue 17, row by row: what a careful operator did to a running daemon, and what it must do.

Real processes on loopback only: ``monitor run`` as a child process, a real
HTTP feed server, a real SMTP server (aiosmtpd), a fake systemd NOTIFY_SOCKET,
real signals, another SQLite connection holding the write lock, a real tmpfs
filled up. Every wait is for an event with a deadline against a hang; the
figures printed (seconds to recover) are this machine's, never asserted.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from conftest import LOOPBACK_FETCH, ROOT, SMTP_PASSWORD, free_port, rss_feed, run_cli
from test_daemon_process import (
    BUKAMAL,
    EXTRA_RULES,
    QUIET,
    _alive,
    _children_of,
    http_get,
    started_daemons,
    state_rows,
    wait_until,
    write_config,
)

from monitor.ingest.workers import WorkerPool

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="AF_UNIX notify socket, POSIX signals, /proc")

LIMIT = 120.0  # against a hang only


def bulletins(n: int, *, start: int = 0) -> list[dict]:
    """Short matching items (under dedup.min_words): each one its own story and message."""
    places = ["البوكمال", "الميادين", "دير الزور", "حقل العمر", "البصيرة"]
    return [{"title": f"بلاغ {i}: قسد تتقدم في {places[i % len(places)]}",
             "link": f"https://news.example/bulletins/{i}", "guid": f"bulletin-{i}"} for i in range(start, start + n)]


def delivered(smtp) -> list[int]:
    numbers = []
    for message in smtp.received():
        text = message.get_body(("plain",)).get_content()
        numbers += sorted({int(n) for n in re.findall(r"https://news\.example/bulletins/(\d+)", text)})
    return numbers


def email(smtp) -> dict:
    return {"email": {"url": smtp.mailto(), "backoff_initial": 0.2, "backoff_max": 2.0}}


def healthz(port: int) -> dict:
    status, body = http_get(f"http://127.0.0.1:{port}/healthz")
    report = json.loads(body)
    report["http_status"] = status
    return report


class HealthProbe:
    """GET /healthz every 0.2 s in a thread; keeps (monotonic time, report)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reports: list[tuple[float, dict]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.reports.append((time.monotonic(), healthz(self.port)))
            except (OSError, ValueError):
                pass
            self._stop.wait(0.2)

    def between(self, start: float, end: float) -> list[dict]:
        return [r for t, r in self.reports if start <= t <= end]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@pytest.fixture(autouse=True)
def _smtp_password(monkeypatch):
    monkeypatch.setenv("SMTP_PASSWORD", SMTP_PASSWORD)  # the daemons inherit it for ${SMTP_PASSWORD}


@pytest.fixture
def daemons():
    yield from started_daemons()


# --------------------------------------------------------------------------- one daemon per state

def test_a_second_daemon_on_the_same_state_is_refused_and_nothing_is_alerted_twice(
        tmp_path, feed_server, smtp_server, daemons):
    url = feed_server.set("/b.xml", rss_feed(bulletins(60)))
    config = write_config(tmp_path, [{"name": "b", "url": url, "interval": "1h"}], channels=email(smtp_server))
    first = daemons(config)
    first.wait_line(r"monitor started", timeout=LIMIT)
    second = daemons(config)
    assert second.proc.wait(timeout=LIMIT) == 1
    second.stop()
    refusal = rf"state\.sqlite3: in use by another monitor \(pid {first.proc.pid}: .*monitor run"
    assert re.search(refusal, second.log()), second.log()
    assert "Traceback" not in second.log() and "monitor started" not in second.log()
    once = run_cli("run", "--once", "--config", str(config))
    assert once.returncode == 1 and f"pid {first.proc.pid}" in once.stderr, once.stderr

    wait_until(lambda: len(set(delivered(smtp_server))) >= 60, timeout=LIMIT, what="60 stories delivered")
    assert first.stop() == 0
    counts = [delivered(smtp_server).count(n) for n in range(60)]
    repeats = state_rows(tmp_path, "SELECT count(*) FROM outbox WHERE possible_repeat = 1")[0][0]
    print(f"\ntwo daemons on one state: second refused (exit 1, names pid {first.proc.pid}); "
          f"60 stories, {sum(c - 1 for c in counts)} alerted twice, {repeats} re-queued as repeats")
    assert counts == [1] * 60 and repeats == 0


# --------------------------------------------------------------------------- the write lock held 40 s

def test_the_write_lock_held_longer_than_the_busy_timeout_then_released(tmp_path, feed_server, smtp_server,
                                                                          daemons):
    """Another process holds the write lock for 40 s (the busy timeout is 10 s), then lets go:
    every feed is polled again and every alert is delivered; /healthz says so meanwhile.

    Rows a delivery loop left 'sending' when its "sent" mark failed are counted and printed:
    retrying that mark is the delivery loop's own business (monitor.alerts), not the daemon's."""
    published = bulletins(30)
    url_a = feed_server.set("/a.xml", rss_feed(published))
    url_b = feed_server.set("/b.xml", rss_feed([QUIET]))
    port = free_port()
    config = write_config(tmp_path, [{"name": "a", "url": url_a, "interval": "1s"},
                                     {"name": "b", "url": url_b, "interval": "1s"}],
                          channels=email(smtp_server), http={"enabled": True, "port": port})
    d = daemons(config)
    d.wait_line(r"monitor started", timeout=LIMIT)
    wait_until(lambda: len(set(delivered(smtp_server))) >= 5, timeout=LIMIT, what="the first deliveries")
    probe = HealthProbe(port)
    try:
        holder = sqlite3.connect(tmp_path / "state.sqlite3", timeout=30, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        locked = time.monotonic()
        # More news while the state is locked; it must arrive too.
        published += bulletins(30, start=30)
        feed_server.set("/a.xml", rss_feed(published))
        d.wait_line(r"database is locked", timeout=LIMIT, after=locked)
        while time.monotonic() < locked + 40:
            time.sleep(0.2)
        holder.execute("ROLLBACK")
        holder.close()
        released = time.monotonic()
        released_wall = time.time()

        wait_until(lambda: all(t and t > released_wall for (t,) in state_rows(
            tmp_path, "SELECT last_success_at FROM feeds ORDER BY name")), timeout=LIMIT,
            what="both feeds polled again after the lock")
        polled_again = time.monotonic() - released
        wait_until(lambda: set(delivered(smtp_server)) >= set(range(60)), timeout=LIMIT,
                   what="all 60 alerts delivered")
        all_delivered = time.monotonic() - released
        wait_until(lambda: healthz(port)["status"] == "ok", timeout=LIMIT, what="/healthz ok again")
        healthy_again = time.monotonic() - released
        during = probe.between(locked + 12, released)
    finally:
        probe.close()
    sending = state_rows(tmp_path, "SELECT count(*) FROM outbox WHERE state = 'sending'")[0][0]
    pending = state_rows(tmp_path, "SELECT count(*) FROM outbox WHERE state = 'pending'")[0][0]
    print(f"\nwrite lock held 40 s: both feeds polled again {polled_again:.1f} s after, all 60 alerts delivered "
          f"{all_delivered:.1f} s after, /healthz ok {healthy_again:.1f} s after; {sending} sending, "
          f"{pending} pending; /healthz during the lock: {sorted({r['status'] for r in during})}")
    assert during and all(r["http_status"] == 503 for r in during), during[-3:]
    assert any("locked" in " ".join(r["reasons"]) for r in during), during[-3:]
    assert pending == 0
    assert d.stop() == 0


# --------------------------------------------------------------------------- the state filesystem full

@pytest.fixture
def small_filesystem(tmp_path):
    """A 16 MiB tmpfs for the state (root only; skipped elsewhere), unmounted afterwards."""
    mount = tmp_path / "statefs"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small filesystem needs root and mount(8)")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True,
                            text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def fill(folder: Path) -> Path:
    """Write zeros into ``folder`` until the filesystem refuses (ENOSPC)."""
    filler = folder / "filler"
    with open(filler, "wb") as out:
        block = b"\0" * (1 << 16)
        try:
            while True:
                out.write(block)
                out.flush()
        except OSError:
            pass
    return filler


def test_the_state_filesystem_full_for_30_s_then_space_freed(tmp_path, feed_server, smtp_server, daemons, notify,
                                                             small_filesystem):
    published = bulletins(10)
    url_a = feed_server.set("/a.xml", rss_feed(published))
    url_b = feed_server.set("/b.xml", rss_feed([QUIET]))
    port = free_port()
    config = write_config(tmp_path, [{"name": "a", "url": url_a, "interval": "1s"},
                                     {"name": "b", "url": url_b, "interval": "1s"}],
                          channels=email(smtp_server), http={"enabled": True, "port": port},
                          state_path=str(small_filesystem / "state.sqlite3"), fetch={"timeout": 2})
    d = daemons(config, notify)
    notify.wait_for("READY", "1", timeout=LIMIT)
    wait_until(lambda: set(delivered(smtp_server)) >= set(range(10)), timeout=LIMIT, what="the first alerts")
    filler = fill(small_filesystem)
    full = time.monotonic()
    published += bulletins(20, start=10)
    feed_server.set("/a.xml", rss_feed(published))
    _, m = d.wait_line(r"(database or disk is full|disk I/O error)", timeout=LIMIT, after=full)
    # Polls end but nothing is recorded: after three intervals (and a fetch timeout) the daemon
    # calls itself stuck and stops pinging the watchdog, so systemd would restart it.
    gave_up, _ = d.wait_line(r"watchdog: no progress, not pinging systemd", timeout=LIMIT, after=full)
    report = healthz(port)
    while time.monotonic() < full + 30:
        time.sleep(0.2)
    pings_while_stuck = [t for t in notify.times("WATCHDOG", "1") if gave_up < t]
    filler.unlink()
    freed = time.monotonic()
    freed_wall = time.time()
    wait_until(lambda: all(t and t > freed_wall for (t,) in state_rows(
        tmp_path / "statefs", "SELECT last_success_at FROM feeds ORDER BY name")), timeout=LIMIT,
        what="both feeds polled again")
    polled_again = time.monotonic() - freed
    wait_until(lambda: set(delivered(smtp_server)) >= set(range(30)), timeout=LIMIT, what="all 30 alerts")
    all_delivered = time.monotonic() - freed
    pinging = notify.wait_for("WATCHDOG", "1", timeout=LIMIT, after=freed) - freed
    print(f"\nstate filesystem full 30 s: stuck (no watchdog ping) {gave_up - full:.1f} s after it filled; "
          f"after freeing: both feeds polled {polled_again:.1f} s, all 30 alerts {all_delivered:.1f} s, "
          f"watchdog again {pinging:.1f} s later")
    assert report["status"] == "stuck" and any("no poll recorded" in r for r in report["reasons"]), report
    assert [t for t in pings_while_stuck if t < freed] == []
    assert d.stop() == 0


# --------------------------------------------------------------------------- a corrupted outbox page

def test_a_corrupt_outbox_page_is_reported_loudly_and_polling_goes_on(tmp_path, feed_server, daemons, notify):
    url = feed_server.set("/b.xml", rss_feed(bulletins(200)))
    quiet = feed_server.set("/q.xml", rss_feed([QUIET]))
    # First a cycle whose channel is down: 200 alerts wait in the outbox.
    down = {"mail": {"url": "mailto://127.0.0.1:9?mode=insecure&from=a@b.org&to=c@d.org", "backoff_initial": 600}}
    config = write_config(tmp_path, [{"name": "b", "url": url, "interval": "1h"},
                                     {"name": "q", "url": quiet, "interval": "1s"}], channels=down)
    assert run_cli("run", "--once", "--config", str(config)).returncode == 0
    conn = sqlite3.connect(tmp_path / "state.sqlite3")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'outbox'").fetchone()[0]
    pending = conn.execute("SELECT count(*) FROM outbox WHERE state = 'pending'").fetchone()[0]
    conn.close()
    assert pending >= 200
    with open(tmp_path / "state.sqlite3", "r+b") as db:
        db.seek((root - 1) * page_size)
        db.write(b"\xde\xad\xbe\xef" * (page_size // 4))

    port = free_port()
    config = write_config(tmp_path, [{"name": "b", "url": url, "interval": "1h"},
                                     {"name": "q", "url": quiet, "interval": "1s"}],
                          channels={"mail": {"url": "console://"}}, http={"enabled": True, "port": port})
    d = daemons(config, notify)
    notify.wait_for("READY", "1", timeout=LIMIT)
    started = time.time()
    wait_until(lambda: "malformed" in " ".join(healthz(port)["reasons"]), timeout=LIMIT,
               what="/healthz naming the corrupt outbox")
    report = healthz(port)
    wait_until(lambda: state_rows(tmp_path, "SELECT last_success_at FROM feeds WHERE name = 'q'")[0][0] > started,
               timeout=LIMIT, what="the quiet feed still polled")
    # `monitor status` prints the daemon's health note, written by its next check round.
    status = wait_until(lambda: (lambda out: out if re.search(r"(degraded|stuck): .*malformed", out) else None)(
        run_cli("status", "--config", str(config)).stdout), timeout=LIMIT, what="monitor status naming it")
    print(f"\ncorrupt outbox page: /healthz {report['http_status']} {report['reasons'][:2]}; status:\n{status}")
    assert report["http_status"] == 503 and report["status"] in ("degraded", "stuck")
    assert d.proc.poll() is None, "the daemon must keep running (and say what is wrong)"
    assert d.stop() == 0


# --------------------------------------------------------------------------- reloads that cannot lose alerts

def test_a_rules_file_removed_or_truncated_for_a_while_loses_no_alert(tmp_path, feed_server, daemons):
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    (rules / "extra.yaml").write_text(EXTRA_RULES, encoding="utf-8")
    published = [QUIET]
    url = feed_server.set("/f.xml", rss_feed(published))
    config = write_config(tmp_path, [{"name": "f", "url": url, "interval": "1s"}], rules=[str(rules)],
                          ops_channel="console", reload={"hold": "10m"})
    d = daemons(config)
    _, m = d.wait_line(r"config .*rules \w+ \((\d+) rules", timeout=LIMIT)
    base = int(m.group(1))
    d.wait_line(r"feed f: 1 items", timeout=LIMIT)

    def publish(item: dict) -> None:
        published.append(item)
        feed_server.set("/f.xml", rss_feed(published))

    def alerted(link: str, rule: str) -> bool:
        rows = state_rows(tmp_path, "SELECT rules FROM items WHERE link = ?", (link,))
        return bool(rows) and rule in rows[0][0]

    # 1. The file is removed: the reload is held back, the item polled meanwhile still alerts.
    saved = (rules / "extra.yaml").read_text(encoding="utf-8")
    mark = time.monotonic()
    (rules / "extra.yaml").unlink()
    _, held = d.wait_line(r"WARNING .*reload \(file change\) held back: it would remove (.*)", timeout=LIMIT,
                          after=mark)
    assert "rules quake_alert" in held.group(1) and "extra.yaml" in held.group(1), held.group(1)
    publish({"title": "زلزال بقوة خمس درجات يضرب المنطقة", "link": "https://news.example/quake-1"})
    wait_until(lambda: alerted("https://news.example/quake-1", "quake_alert"), timeout=LIMIT,
               what="the removed file's rule still alerting")
    mark = time.monotonic()
    (rules / "extra.yaml").write_text(saved, encoding="utf-8")
    d.wait_line(rf"reloaded \(file change\): 1 feeds, rules \w+ \({base} rules\)", timeout=LIMIT, after=mark)

    # 2. A file truncated to a shorter file that still parses: held back too.
    mark = time.monotonic()
    (rules / "extra.yaml").write_text("keywords:\n  - id: quake_words\n    words: [زلزال]\n", encoding="utf-8")
    _, held = d.wait_line(r"reload \(file change\) held back: it would remove (.*)", timeout=LIMIT, after=mark)
    assert "rules quake_alert" in held.group(1) and "files shorter" in held.group(1), held.group(1)
    publish({"title": "زلزال جديد يضرب المنطقة نفسها", "link": "https://news.example/quake-2"})
    wait_until(lambda: alerted("https://news.example/quake-2", "quake_alert"), timeout=LIMIT,
               what="the truncated file's rule still alerting")

    # 3. No rules at all: refused (not merely held), and said on the ops channel.
    mark = time.monotonic()
    for path in rules.glob("*.yaml"):
        path.write_text("entities: []\n", encoding="utf-8")
    d.wait_line(r"reload \(file change\) failed, keeping the running rules: the new rules define no rule at all",
                timeout=LIMIT, after=mark)
    d.wait_line(r"reload failed, old rules still running", timeout=LIMIT, stream="out")

    # 4. Nested 500 deep: a located error, the running rules stay.
    mark = time.monotonic()
    shutil.rmtree(rules)
    shutil.copytree(ROOT / "rules", rules)
    (rules / "extra.yaml").write_text(saved, encoding="utf-8")
    (rules / "nested.yaml").write_text("[" * 500 + "]" * 500 + "\n", encoding="utf-8")
    _, failed = d.wait_line(r"reload \(file change\) failed, keeping the running rules: (.*)", timeout=LIMIT,
                            after=mark)
    assert "nested.yaml:1:51: refused: nested deeper than 50 levels" in failed.group(1)

    # 4b. A 3.7 MB file of 1.9 M tiny values dropped in (it took a daemon to 1.4 GB): refused while
    #     parsing, the daemon's peak memory stays where it was.
    mark = time.monotonic()
    (rules / "nested.yaml").write_text("entities:\n  - id: x\n    aliases: [" + ",".join(["a"] * 1_900_000)
                                       + "]\n", encoding="utf-8")
    _, failed = d.wait_line(r"reload \(file change\) failed, keeping the running rules: (.*)", timeout=LIMIT,
                            after=mark)
    assert "nested.yaml:3:" in failed.group(1) and "refused: more than 100000 values" in failed.group(1)
    peak_kb = int(re.search(r"VmHWM:\s+(\d+)", Path(f"/proc/{d.proc.pid}/status").read_text()).group(1))
    print(f"\n1.9 M-value rules file dropped into the running daemon: refused; daemon peak {peak_kb / 1024:.0f} MB")
    assert peak_kb / 1024 < 400

    # 5. A removal that stays is accepted once the files were stable for reload.hold, with a WARNING.
    (rules / "nested.yaml").unlink()
    write_config(tmp_path, [{"name": "f", "url": url, "interval": "1s"}], rules=[str(rules)],
                 ops_channel="console", reload={"hold": "2s"})
    d.wait_line(r"reloaded \(file change\)", timeout=LIMIT, after=mark)
    mark = time.monotonic()
    (rules / "extra.yaml").unlink()
    d.wait_line(r"held back: it would remove rules quake_alert", timeout=LIMIT, after=mark)
    _, accepted = d.wait_line(r"WARNING .*reload \(held reload, files stable\): removing (.*)", timeout=LIMIT,
                              after=mark)
    assert "rules quake_alert" in accepted.group(1)
    d.wait_line(rf"reloaded \(held reload, files stable\): 1 feeds, rules \w+ \({base - 1} rules\)", timeout=LIMIT,
                after=mark)
    assert d.stop() == 0 and "Traceback" not in d.log()


# --------------------------------------------------------------------------- no secret where a user can see it

def test_no_secret_in_feeds_status_check_or_the_state_files(tmp_path, feed_server, daemons):
    token = "feed-token-5f0c2a9e71d4"
    feed_server.set(f"/{token}/feed.xml", rss_feed([BUKAMAL] + [
        {"title": f"خبر {i}", "link": f"https://news.example/same-date/{i}"} for i in range(19)]))
    feed_server.set("/moved.xml", b"", status=301, headers={"Location": f"ftp://files.example/{token}/feed.xml"})
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "state_path": "state/state.sqlite3", "rules": [str(ROOT / "rules")],
        "feeds": [{"name": "tokened", "url": feed_server.base + "/${FEED_TOKEN}/feed.xml", "interval": "5m"},
                  {"name": "moved", "url": feed_server.url("/moved.xml"), "interval": "5m"}],
        "channels": {"console": {"url": "console://"}}, "fetch": LOOPBACK_FETCH}), encoding="utf-8")
    env = {"FEED_TOKEN": token}
    os.umask(0o022)  # outside systemd (UMask=0077 there): the state must be private anyway
    d = daemons(config, env=env)
    d.wait_line(r"feed tokened: 20 items", timeout=LIMIT)
    d.wait_line(r"feed moved: redirect", timeout=LIMIT)
    wait_until(lambda: state_rows(tmp_path / "state", "SELECT count(*) FROM feeds WHERE next_poll_at IS NOT NULL")[0][0]
               == 2, timeout=LIMIT, what="both next polls recorded")
    # 20 items sharing one date ("20 a week") with interval 5m: the next poll is within 5 m (+10% jitter).
    (wait,) = state_rows(tmp_path / "state", "SELECT next_poll_at - last_poll_at FROM feeds WHERE name = 'tokened'")[0]
    outputs = {args[0]: run_cli(*args, "--config", str(config), env=env) for args in (["feeds"], ["status"],
                                                                                       ["check"])}
    assert d.stop() == 0
    state_dir = tmp_path / "state"
    files = {p.name: p.read_bytes() for p in state_dir.iterdir() if p.is_file()}
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in state_dir.iterdir()}
    print(f"\nsecrets: token in {[n for n, o in outputs.items() if token in o.stdout + o.stderr]} outputs, "
          f"in {[n for n, b in files.items() if token.encode() in b]} state files; modes "
          f"{ {n: oct(m) for n, m in modes.items()} }, folder {oct(stat.S_IMODE(state_dir.stat().st_mode))}; "
          f"next poll of the 20-same-date feed in {wait:.0f} s")
    for name, result in outputs.items():
        assert result.returncode == 0, (name, result.stderr)
        assert token not in result.stdout + result.stderr, (name, result.stdout)
    assert "[REDACTED]" in outputs["feeds"].stdout and "redirect" in outputs["feeds"].stdout
    assert not [n for n, b in files.items() if token.encode() in b]
    assert token not in d.log() + d.log("out")
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700
    assert modes["state.sqlite3"] == 0o600 and modes["state.sqlite3.lock"] == 0o600
    assert 0 < wait <= 330


# --------------------------------------------------------------------------- no orphans

@pytest.mark.skipif(WorkerPool.workers_for(25) == 0, reason="one usable CPU: the daemon parses in a thread")
def test_sigkill_of_the_daemon_leaves_no_process_behind(tmp_path, feed_server, daemons):
    small = feed_server.set("/s.xml", rss_feed([QUIET]))
    config = write_config(tmp_path, [{"name": f"s{i}", "url": small, "interval": "1s"} for i in range(25)])
    d = daemons(config)
    d.wait_line(r"feed s\d+: 1 items", timeout=LIMIT)
    below = wait_until(lambda: _descendants(d.proc.pid) if len(_descendants(d.proc.pid)) >= 3 else None,
                       timeout=LIMIT, what="forkserver, workers and resource tracker")
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait(10)
    wait_until(lambda: not [p for p in below if _alive(p)], timeout=60, what=f"{below} gone after SIGKILL")


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        for child in _children_of(todo.pop()):
            out.append(child)
            todo.append(child)
    return out
