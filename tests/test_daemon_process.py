"""The daemon as systemd runs it: a real ``python -m monitor run`` process.

Nothing is mocked. Each test starts the daemon with a temp config, feeds served
from 127.0.0.1 (``FeedServer``), a ``console://`` channel, and a fake
``NOTIFY_SOCKET``: an AF_UNIX datagram socket this test binds and reads in a
thread, timestamping every datagram on arrival. Signals are real signals,
``/metrics`` and ``/healthz`` are real HTTP on loopback, and the state is read
with a read-only SQLite connection while the daemon writes it.

Every wait is a polling loop with a generous deadline ("until X or 30 s");
nothing sleeps a fixed time waiting for the daemon.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from conftest import LOOPBACK_FETCH, ROOT, NotifyListener, free_port, rss_feed, run_cli

from monitor.ingest.workers import WorkerPool

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="AF_UNIX notify socket, POSIX signals")

WATCHDOG_USEC = 2_000_000          # the daemon pings every WATCHDOG_USEC / 2 = 1 s
PING_INTERVAL = WATCHDOG_USEC / 2_000_000
STOP_TIMEOUT = 30.0                # TimeoutStopSec is 45 in deploy/monitor.service


# --------------------------------------------------------------------------- helpers

class DaemonProcess:
    """``python -m monitor run --config CONFIG`` with its stdout/stderr read line by line in threads."""

    def __init__(self, config: Path, notify: NotifyListener | None, *, watchdog_usec: int = WATCHDOG_USEC,
                 env: dict[str, str] | None = None) -> None:
        env = {**{k: v for k, v in os.environ.items()
                  if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM", "STATE_DIRECTORY")},
               **(env or {})}
        env["PYTHONUNBUFFERED"] = "1"
        if notify is not None:
            env["NOTIFY_SOCKET"] = notify.path
            env["WATCHDOG_USEC"] = str(watchdog_usec)
        self.started = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "-m", "monitor", "run", "--config", str(config)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT,
                                     text=True, encoding="utf-8", errors="replace")
        self.lines: list[tuple[float, str, str]] = []  # (monotonic time, "out"/"err", line)
        self._lock = threading.Lock()
        self._readers = [threading.Thread(target=self._pump, args=(stream, name), daemon=True)
                         for stream, name in ((self.proc.stdout, "out"), (self.proc.stderr, "err"))]
        for reader in self._readers:
            reader.start()

    def _pump(self, stream, name: str) -> None:
        for line in stream:
            with self._lock:
                self.lines.append((time.monotonic(), name, line.rstrip("\n")))

    def log(self, stream: str = "err") -> str:
        with self._lock:
            return "\n".join(line for _, name, line in self.lines if name == stream)

    def wait_line(self, pattern: str, timeout: float = 30.0, *, after: float = 0.0,
                  stream: str = "err") -> tuple[float, re.Match]:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for t, name, line in self.lines:
                    if name == stream and t >= after:
                        m = regex.search(line)
                        if m:
                            return t, m
            if self.proc.poll() is not None:
                time.sleep(0.2)  # let the readers drain
                with self._lock:
                    if not any(regex.search(line) for t, n, line in self.lines if n == stream and t >= after):
                        raise AssertionError(f"daemon exited ({self.proc.returncode}) before /{pattern}/:\n"
                                             + self.log()[-4000:])
                continue
            time.sleep(0.05)
        raise AssertionError(f"no /{pattern}/ within {timeout:.0f}s; log:\n" + self.log()[-4000:])

    def signal(self, signum: int) -> None:
        if signum == signal.SIGTERM:
            self.terminated = True
        self.proc.send_signal(signum)

    terminated = False

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM (once, as systemd does) and wait for the exit code."""
        if self.proc.poll() is None and not self.terminated:
            self.signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=timeout)
        self._close_pipes()
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._close_pipes()

    def _close_pipes(self) -> None:
        """The readers end at EOF once the process is gone; then the pipes are closed (no ResourceWarning)."""
        for reader in self._readers:
            reader.join(timeout=5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None and not stream.closed:
                stream.close()


def started_daemons():
    """Yields ``start(config, notify)``; any daemon still running afterwards is killed."""
    started: list[DaemonProcess] = []

    def start(config: Path, notify: NotifyListener | None = None, **kw) -> DaemonProcess:
        d = DaemonProcess(config, notify, **kw)
        started.append(d)
        return d

    yield start
    for d in started:
        d.kill()


@pytest.fixture
def daemons():
    """Start daemons with ``daemons(config, notify)``; any still running at the end are killed."""
    yield from started_daemons()


def write_config(tmp_path: Path, feeds: list[dict], *, rules: list[str] | None = None, **extra) -> Path:
    """A config polling every 2 s (a feed's own ``interval`` is also its longest wait)."""
    config = {
        "state_path": str(tmp_path / "state.sqlite3"),
        "rules": rules or [str(ROOT / "rules")],
        "feeds": feeds,
        "channels": {"console": {"url": "console://"}},
        "defaults": {"interval": "2s", "min_interval": "1s", "jitter": 0},
        **extra,
        "fetch": {"timeout": 20, **LOOPBACK_FETCH, **extra.get("fetch", {})},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def state_rows(tmp_path: Path, sql: str, params: tuple = ()) -> list[tuple]:
    """Read the daemon's state read-only while it runs (WAL: never blocks the writer)."""
    conn = sqlite3.connect(f"file:{tmp_path / 'state.sqlite3'}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def wait_until(predicate, timeout: float = 30.0, what: str = "condition", interval: float = 0.1):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except (sqlite3.OperationalError, OSError) as exc:  # DB not created yet, server not up yet
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"{what} not reached within {timeout:.0f}s (last: {last!r})")


def alerts_for(tmp_path: Path, rule_id: str) -> list[tuple]:
    return state_rows(tmp_path, "SELECT id, item_key FROM alerts WHERE rule_id = ?", (rule_id,))


QUIET = {"title": "افتتاح معرض للكتاب في المدينة", "link": "https://news.example/quiet-1",
         "description": "افتتح اليوم معرض للكتاب بمشاركة دور نشر عديدة."}
BUKAMAL = {"title": "قوات سوريا الديمقراطية تتقدم نحو البوكمال", "link": "https://news.example/bukamal-1",
           "description": "أعلنت قسد أنها تقدمت نحو مدينة البوكمال على الحدود السورية العراقية."}


def big_feed(target_bytes: int = 20_000_000) -> bytes:
    """About 20 MB of valid RSS that matches no rule: ~2,900 items.

    The first 500 (the ones the daemon reads: all share one date, so the cap
    keeps document order) have a typical ~600-character body; the rest are
    ~7 KB each. Reading it (the cap's scan of every entry, then feedparser on
    500) is seconds of CPU, while matching stays cheap. That isolates what this
    test is about: *parsing* must not block the loop.
    """
    sentence = "أعلنت مصادر محلية في مدينة حلب أن الأسواق شهدت حركة تجارية نشطة اليوم مع اقتراب موسم الأعياد. "
    items = [{"title": f"خبر محلي رقم {i}", "link": f"https://big.example/a/{i}", "description": sentence * 6}
             for i in range(500)]
    filler = sentence * 40
    size = len(rss_feed(items).encode("utf-8"))
    count = max(0, target_bytes - size) // (len(filler.encode("utf-8")) + 120)
    items += [{"title": f"أرشيف {i}", "link": f"https://big.example/old/{i}", "description": filler}
              for i in range(count)]
    return rss_feed(items).encode("utf-8")


def http_get(url: str, timeout: float = 10.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8")


# --------------------------------------------------------------------------- 1. notify, watchdog, stop

def test_invalid_config_exits_1_without_ready(tmp_path, notify, daemons):
    config = write_config(tmp_path, [{"name": "f", "url": "http://127.0.0.1:9/f.xml", "interval": "soon"}])
    d = daemons(config, notify)
    assert d.proc.wait(timeout=60) == 1
    d.stop()
    assert "config.yaml:" in d.log() and "Traceback" not in d.log()
    # A state file that is not a database is refused the same way: clearly, exit 1, no READY.
    (tmp_path / "state.sqlite3").write_bytes(b"this is not a database, " * 200)
    config = write_config(tmp_path, [{"name": "f", "url": "http://127.0.0.1:9/f.xml"}])
    d = daemons(config, notify)
    assert d.proc.wait(timeout=60) == 1
    d.stop()
    assert "state.sqlite3" in d.log() and "Traceback" not in d.log(), d.log()
    notify.drain()  # every datagram the exited processes sent has been read now
    assert notify.times("READY") == [], notify.snapshot()


@pytest.mark.parametrize("feeds", [2, 20], ids=["parse-in-thread", "parse-in-processes"])
def test_ready_status_watchdog_during_20mb_parse_then_clean_stop(tmp_path, notify, daemons, feed_server, feeds):
    """With 20 feeds (``workers.MIN_FEEDS_FOR_PROCESSES``) on a multi-core machine the
    daemon parses in forkserver worker processes, else in a thread: both must keep the
    loop free, and SIGTERM must stop both cleanly."""
    body = big_feed()
    assert len(body) >= 19_000_000
    big = feed_server.set("/big.xml", body)
    small = feed_server.set("/small.xml", rss_feed([QUIET]))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    config = write_config(tmp_path, [{"name": "big", "url": big, "interval": "1h"}]
                          + [{"name": f"small{i}", "url": small} for i in range(feeds - 1)],
                          fetch={"timeout": 60, "max_bytes": 32 * 1024 * 1024},
                          http={"enabled": True, "port": port})
    d = daemons(config, notify)

    ready = notify.wait_for("READY", "1", timeout=60)
    # READY only once config, rules and the state DB are valid and the state exists.
    config_logged, _ = d.wait_line(rf"config .*: {feeds} feeds, 1 channels, rules \w+ \(\d+ rules", timeout=5)
    assert config_logged <= ready
    assert (tmp_path / "state.sqlite3").exists()
    assert state_rows(tmp_path, "SELECT value FROM meta WHERE key = 'daemon_started'")
    assert not [t for t in notify.times("WATCHDOG") if t < ready], "no watchdog ping before READY"

    # STATUS= carries a short summary.
    notify.wait_for("STATUS", timeout=30)
    status = notify.values("STATUS")[-1]
    assert re.search(rf"{feeds} feeds \(\d+ failing\)", status) and len(status) < 200, status

    # The big feed: fetched, then parsed off the loop and its 500 newest items matched and
    # recorded. Meanwhile the loop must go on serving: a /healthz request sent after the body
    # was served is answered before the feed is recorded. An ordering of events, not a gap
    # measured against a clock (the parse takes however long this machine needs).
    answers: list[tuple[float, float]] = []
    probing = threading.Event()

    def probe() -> None:
        while not probing.is_set():
            sent = time.monotonic()
            if http_get(base + "/healthz")[0] in (200, 503):
                answers.append((sent, time.monotonic()))

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    done, m = d.wait_line(r"feed big: (\d+) items", timeout=120)
    probing.set()
    prober.join(timeout=15)
    assert int(m.group(1)) == 500
    served = feed_server.served["/big.xml"]
    inside = [(sent, answered) for sent, answered in answers if sent >= served and answered <= done]
    print(f"\n/healthz answered {len(inside)} times between the body served and the feed recorded "
          f"({done - served:.1f} s on this machine)")
    assert inside, "the loop answered nothing while the 20 MB feed was parsed"
    notify.wait_for("WATCHDOG", "1", timeout=10, after=done + 0.01)  # and the watchdog goes on
    assert not [t for t in notify.times("WATCHDOG", "1") if t < ready], "no watchdog ping before READY"

    children = _children_of(d.proc.pid)
    if WorkerPool.workers_for(feeds) > 0:  # decided as the daemon decides (CPU affinity, not cpu_count)
        assert children, "20 feeds on a multi-core machine: parsing should run in worker processes"

    # SIGTERM: STOPPING=1, then exit 0 well within TimeoutStopSec.
    term = time.monotonic()
    d.signal(signal.SIGTERM)
    stopping = notify.wait_for("STOPPING", "1", timeout=STOP_TIMEOUT, after=term)
    assert d.stop(timeout=STOP_TIMEOUT) == 0, d.log()[-3000:]
    print(f"stop: STOPPING after {stopping - term:.2f}s, exit 0 after {time.monotonic() - term:.2f}s")
    assert "monitor stopped" in d.log()
    assert "Traceback" not in d.log()
    wait_until(lambda: not [pid for pid in children if _alive(pid)], timeout=10,
               what=f"parse workers {children} gone after the daemon exited")


# --------------------------------------------------------------------------- 2. reload

EXTRA_RULES = """\
keywords:
  - id: quake_words
    words: [زلزال]
rules:
  - id: quake_alert
    title: Earthquake
    severity: warning
    any: [quake_words]
"""

BROKEN_RULES = """\
keywords:
  - id: quake_words
    words: [زلزال]
rules:
  - id: quake_alert
    title: Earthquake
    severity: warning
    any: [quake_wordz]
"""

def extra_with_flood() -> str:
    return EXTRA_RULES.replace(
        "rules:\n",
        "  - id: flood_words\n    words: [فيضان]\nrules:\n"
    ) + "  - id: flood_alert\n    title: Flood\n    severity: info\n    any: [flood_words]\n"


def test_reload_sighup_broken_file_and_watcher(tmp_path, notify, daemons, feed_server):
    rules_dir = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules_dir)
    items = [QUIET]
    url = feed_server.set("/f.xml", rss_feed(items))
    config = write_config(tmp_path, [{"name": "f", "url": url}], rules=[str(rules_dir)], ops_channel="console")
    d = daemons(config, notify)
    notify.wait_for("READY", "1", timeout=60)
    _, m = d.wait_line(r"config .*: 1 feeds, 1 channels, rules \w+ \((\d+) rules", timeout=5)
    base_rules = int(m.group(1))  # the repo's rule pack, whatever its size today
    d.wait_line(r"feed f: 1 items", timeout=30)

    def publish(item: dict) -> None:
        items.append(item)
        feed_server.set("/f.xml", rss_feed(items))

    # -- SIGHUP with a valid new rules file: the new rule matches on the next poll.
    (rules_dir / "extra.yaml").write_text(EXTRA_RULES, encoding="utf-8")
    sent = time.monotonic()
    d.signal(signal.SIGHUP)
    d.wait_line(rf"reloaded \(SIGHUP\): 1 feeds, rules \w+ \({base_rules + 1} rules\)", timeout=30, after=sent)
    notify.wait_for("RELOADING", "1", timeout=10, after=sent)
    notify.wait_for("READY", "1", timeout=10, after=sent)
    publish({"title": "زلزال بقوة خمس درجات يضرب المنطقة", "link": "https://news.example/quake-1",
             "description": "شعر السكان بزلزال قوي فجر اليوم."})
    wait_until(lambda: alerts_for(tmp_path, "quake_alert"), what="alert of the new rule")
    d.wait_line(r"Earthquake|زلزال", timeout=30, stream="out")  # delivered to console://

    # -- a broken rules file: error with file:line logged, old rules keep matching, daemon keeps running.
    (rules_dir / "extra.yaml").write_text(BROKEN_RULES, encoding="utf-8")
    sent = time.monotonic()
    d.signal(signal.SIGHUP)
    _, m = d.wait_line(r"reload \(SIGHUP\) failed, keeping the running rules: (.*)", timeout=30, after=sent)
    assert re.search(r"extra\.yaml:8(:\d+)?:", m.group(1)), m.group(1)
    assert "quake_wordz" in m.group(1)
    notify.wait_for("READY", "1", timeout=10, after=sent)  # RELOADING is always closed by READY
    d.wait_line(r"reload failed, old rules still running", timeout=30, stream="out")  # the ops channel
    publish({"title": "زلزال جديد يضرب المنطقة نفسها", "link": "https://news.example/quake-2",
             "description": "هزة ارتدادية بعد زلزال الأمس."})
    wait_until(lambda: _seen_with_rule(tmp_path, "https://news.example/quake-2", "quake_alert"),
               what="old rules still matching after a broken reload")
    assert d.proc.poll() is None

    # -- a plain edit (no SIGHUP): the watcher reloads, a second new rule matches.
    sent = time.monotonic()
    (rules_dir / "extra.yaml").write_text(extra_with_flood(), encoding="utf-8")
    d.wait_line(rf"reloaded \(file change\): 1 feeds, rules \w+ \({base_rules + 2} rules\)", timeout=30,
                after=sent)
    publish({"title": "فيضان يغمر قرى على ضفاف النهر", "link": "https://news.example/flood-1",
             "description": "غمرت مياه الفيضان عشرات المنازل."})
    wait_until(lambda: alerts_for(tmp_path, "flood_alert"), what="alert of the rule added by a file edit")

    assert d.stop() == 0
    assert "Traceback" not in d.log()
    # One ops alert for the broken file, however many reloads saw the same error.
    assert d.log("out").count("reload failed, old rules still running") == 1, d.log("out")


def _children_of(pid: int) -> list[int]:
    """Live processes whose parent is ``pid`` (forkserver and its workers would be)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _seen_with_rule(tmp_path: Path, link: str, rule_id: str) -> bool:
    """The item was recorded as matching ``rule_id`` (an alert may be folded into an earlier story's)."""
    rows = state_rows(tmp_path, "SELECT rules FROM items WHERE link = ?", (link,))
    return bool(rows) and rule_id in rows[0][0]


# --------------------------------------------------------------------------- 3+4. http, health, status

def test_metrics_healthz_and_status_while_running(tmp_path, notify, daemons, feed_server):
    good = feed_server.set("/good.xml", rss_feed([QUIET, BUKAMAL]))
    bad = feed_server.set("/bad.xml", "internal error", status=500, content_type="text/plain")
    hang = feed_server.set("/hang.xml", hang=True)  # never answers: a poll is in flight at SIGTERM
    port = free_port()
    config = write_config(tmp_path, [{"name": "good", "url": good, "interval": "1h"},
                                     {"name": "bad", "url": bad, "interval": "1s"},
                                     {"name": "hang", "url": hang, "interval": "1h"}],
                          http={"enabled": True, "port": port}, fetch={"timeout": 60})
    d = daemons(config, notify)
    notify.wait_for("READY", "1", timeout=60)
    base = f"http://127.0.0.1:{port}"

    from prometheus_client.parser import text_string_to_metric_families

    def samples() -> dict[tuple[str, tuple], float]:
        status, text = http_get(base + "/metrics")
        assert status == 200
        out = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out

    def total(values: dict, name: str, **labels) -> float:
        return sum(v for (n, ls), v in values.items()
                   if n == name and all((k, val) in ls for k, val in labels.items()))

    def after_good_poll():
        values = samples()
        return values if total(values, "monitor_alerts_total", state="sent") > 0 else None

    values = wait_until(after_good_poll, timeout=30, what="a poll with a delivered alert in /metrics")
    assert total(values, "monitor_polls_total", outcome="ok") >= 1
    assert total(values, "monitor_items_total", outcome="new") >= 2
    assert total(values, "monitor_alerts_total", state="queued") >= 1
    assert total(values, "monitor_rule_matches_total") >= 1
    assert total(values, "monitor_start_time_seconds") > 1e9
    assert ("monitor_outbox_depth", ()) in values

    # /healthz: ok at first would be racy (the bad feed fails from the start); it must turn
    # degraded once the bad feed has failed 3 times in a row, naming it.
    def degraded():
        status, body = http_get(base + "/healthz")
        return (status, body) if status == 503 else None

    status, body = wait_until(degraded, timeout=40, what="/healthz degraded")
    import json
    report = json.loads(body)
    assert report["status"] == "degraded"
    assert any("bad" in r and "failing" in r for r in report["reasons"]), report
    assert report["failing_feeds"] == 1 and report["feeds"] == 3
    values = samples()
    assert total(values, "monitor_feeds_failing") == 1
    assert total(values, "monitor_polls_total", outcome="error") >= 3
    assert total(values, "monitor_fetch_errors_total", kind="status") >= 3

    # `monitor status` reads the state safely while the daemon writes it.
    # The daemon's health note (in the state) follows its check loop: wait for the note that
    # names the failing feed, then read the rest of the same output.
    health_line = r"health:    degraded\n  degraded: feeds: 1 feeds failing .*: bad"

    def status_naming_the_feed() -> str | None:
        result = run_cli("status", "--config", str(config), timeout=60)
        assert result.returncode == 0, result.stderr
        return result.stdout if re.search(health_line, result.stdout) else None

    out = wait_until(status_naming_the_feed, timeout=60, what="monitor status naming the failing feed")
    assert re.search(r"feeds:\s+2 known, 1 failing", out), out  # "hang" has not finished a poll
    assert re.search(r"outbox:\s+\d+ waiting, [1-9]\d* sent, 0 dead", out), out
    assert f"daemon:    running (pid {d.proc.pid}), started" in out, out
    assert "last alert:" in out and "never" not in out.split("last alert:")[1]

    # SIGTERM while the "hang" feed's fetch is in flight (60 s timeout): the poll is cancelled
    # (it is replayed after a restart), so the stop does not wait for the feed.
    assert feed_server.hits.get("/hang.xml") == 1
    term = time.monotonic()
    assert d.stop() == 0
    elapsed = time.monotonic() - term
    print(f"\nstop with a hanging fetch in flight: exit 0 after {elapsed:.2f}s")
    assert elapsed < 15, elapsed
    assert "feed hang: poll cancelled (stopping)" in d.log()
    assert "Traceback" not in d.log()
