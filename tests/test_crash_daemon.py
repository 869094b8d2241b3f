"""The whole daemon killed with SIGKILL at random points while it delivers 500
alerts, and restarted each time on the same state: nothing is lost, and the
repeats are no more than the kills.

Real parts only: ``monitor run`` as a process, a loopback HTTP feed server, a
real SMTP server (aiosmtpd) receiving the alerts.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from conftest import SMTP_PASSWORD, FeedServer, SmtpSink, rss_feed

ROOT = Path(__file__).resolve().parent.parent
N = 500
PLACES = ["البوكمال", "الميادين", "دير الزور", "حقل العمر", "البصيرة"]


def items() -> list[dict]:
    # Short texts (under dedup.min_words) so each bulletin is its own story:
    # only exact duplicates fold, and none of these is one.
    return [{"title": f"بلاغ {i}: قسد تتقدم في {PLACES[i % len(PLACES)]}",
             "link": f"https://news.example/bulletins/{i}", "guid": f"bulletin-{i}", "description": ""}
            for i in range(N)]


def start(config: Path) -> subprocess.Popen:
    env = {**os.environ, "SMTP_PASSWORD": SMTP_PASSWORD}
    env.pop("NOTIFY_SOCKET", None)
    return subprocess.Popen([sys.executable, "-m", "monitor", "run", "--config", str(config)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)


def bulletin_numbers(smtp: SmtpSink) -> list[int]:
    numbers = []
    for message in smtp.received():
        text = message.get_body(("plain",)).get_content()
        # A message names its story's link (maybe more than once: link and sources).
        numbers += sorted({int(n) for n in re.findall(r"https://news\.example/bulletins/(\d+)", text)})
    return numbers


@pytest.mark.slow
def test_sigkill_while_delivering_loses_nothing(tmp_path, feed_server: FeedServer, smtp_server: SmtpSink):
    feed_server.set("/bulletins.xml", rss_feed(items()))
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "state_path": str(tmp_path / "state.sqlite3"),
        "rules": [str(ROOT / "rules")],
        "feeds": [{"name": "bulletins", "url": feed_server.url("/bulletins.xml"), "interval": "1h"}],
        "channels": {"email": {"url": smtp_server.mailto(), "backoff_initial": 0.2, "backoff_max": 1.0}},
        "log_level": "WARNING",
    }, allow_unicode=True), encoding="utf-8")

    rng = random.Random(20171023)
    kills = 0
    deadline = time.monotonic() + 150
    proc = start(config)
    try:
        while time.monotonic() < deadline:
            if len(set(bulletin_numbers(smtp_server))) >= N:
                break
            if kills < 8:
                # Let it run for a random while (start-up, polling, the commit, or
                # the middle of the deliveries), then kill it without warning.
                time.sleep(rng.uniform(0.5, 3.5))
                if proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait(10)
                    kills += 1
                proc = start(config)
            else:
                time.sleep(0.5)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()

    numbers = bulletin_numbers(smtp_server)
    counts = Counter(numbers)
    lost = set(range(N)) - set(counts)
    repeats = sum(c - 1 for c in counts.values())
    assert kills >= 4, "the test must actually kill the daemon several times"
    assert not lost, f"{len(lost)} alerts lost after {kills} kills"
    assert repeats <= kills, f"{repeats} repeats after {kills} kills"
    # A repeat is the message that was in flight: it says so, and has the first copy's Message-ID
    # (mail clients fold the two).
    copies: dict[int, list] = {}
    for message in smtp_server.received():
        text = message.get_body(("plain",)).get_content()
        for n in {int(n) for n in re.findall(r"https://news\.example/bulletins/(\d+)", text)}:
            copies.setdefault(n, []).append((message["Message-ID"], "مكررة" in text))
    for n, seen in copies.items():
        if len(seen) > 1:
            assert len({mid for mid, _ in seen}) == 1, f"bulletin {n}: repeats under another Message-ID"
            assert all(marked for _, marked in seen[1:]), f"bulletin {n}: a repeat not marked as one"
    print(f"\n{kills} kills, {N} alerts, 0 lost, {repeats} repeats")
