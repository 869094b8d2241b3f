"""Crash test: a real delivering process killed with SIGKILL at random points and restarted.

500 alerts go to the loopback fake Bot API through the native Telegram sender;
after every kill the process is started again on the same state. Nothing may
be lost and duplicates may not exceed the number of kills; every repeat must
come from a row marked as a possible repeat.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from fake_telegram import FakeTelegram

from monitor.state import open_state

N = 500
WORKER = textwrap.dedent("""
    import asyncio, sys
    from monitor.alerts.deliver import Deliverer
    from monitor.alerts.settings import ChannelSettings
    from monitor.state import open_state
    conn = open_state(sys.argv[1])
    ch = {"tg": ChannelSettings(url="tgram://123456789:AAHsecretTOKENvalue_abcdefghijklmnop/-100777",
                                min_interval=0, per_minute=100000, backoff_initial=0.05, backoff_max=0.2)}
    report = asyncio.run(Deliverer(conn, ch).drain(timeout=120))
    print("REPORT", report.sent, report.pending, flush=True)
""")


@pytest.mark.slow
def test_sigkill_loses_nothing_and_repeats_at_most_once_per_kill(tmp_path):
    fake = FakeTelegram().start()
    db = tmp_path / "state.db"
    conn = open_state(db)
    with conn.transaction():
        for i in range(N):
            payload = (f'{{"rule_id": "r", "rule_title": "r", "feed": "f", "title": "خبر رقم ALERT{i:04d}", '
                       f'"summary": "", "hits": []}}')
            conn.execute("INSERT INTO stories(id, created, updated, text_hash) VALUES (?, 0, 0, ?)", (i + 1, str(i)))
            conn.execute("INSERT INTO alerts(id, story_id, rule_id, item_key, created, payload) "
                         "VALUES (?, ?, 'r', ?, 0, ?)", (i + 1, i + 1, f"k{i}", payload))
            conn.execute("INSERT INTO outbox(alert_id, channel, not_before, created) VALUES (?, 'tg', 0, 0)", (i + 1,))
    conn.close()
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]), MONITOR_TELEGRAM_API=fake.base)
    rng = random.Random(1234)
    kills = 0
    try:
        for _round in range(40):
            proc = subprocess.Popen([sys.executable, str(script), str(db)], env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            before = sum(map(len, fake.messages.values()))
            deadline = time.monotonic() + 20
            target = before + rng.randint(5, 60)
            while proc.poll() is None and time.monotonic() < deadline:
                if sum(map(len, fake.messages.values())) >= target:
                    time.sleep(rng.random() * 0.01)
                    break
                time.sleep(0.002)
            if proc.poll() is None and kills < 10:
                proc.kill()
                proc.communicate()  # reaps it and closes its stdout pipe
                kills += 1
                continue
            out, _ = proc.communicate(timeout=120)
            if b"REPORT" in out and out.split()[-1] == b"0":
                break
    finally:
        fake.stop()
    texts = fake.messages.get("-100777", [])
    ids = [t.split("ALERT")[1][:4] for t in texts]
    counts = {i: ids.count(i) for i in set(ids)}
    assert len(counts) == N, f"lost {N - len(counts)}"
    duplicates = len(ids) - N
    print(f"kills={kills} duplicates={duplicates}")
    assert kills >= 5
    assert duplicates <= kills
    conn = open_state(db)
    assert conn.execute("SELECT count(*) FROM outbox WHERE state != 'sent'").fetchone()[0] == 0
    # every row knows the Telegram message it went out as: the last copy of each alert
    stored = conn.execute("SELECT count(DISTINCT message_id) FROM outbox WHERE message_id LIKE '-100777/%'").fetchone()
    assert stored[0] == N
    repeated = {f"{r[0] - 1:04d}" for r in conn.execute("SELECT alert_id FROM outbox WHERE possible_repeat = 1")}
    assert {i for i, c in counts.items() if c > 1} <= repeated
    repeats_marked = [t for t in texts if "مكررة" in t]
    assert len(repeats_marked) >= duplicates
