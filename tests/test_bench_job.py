"""bench/bench_job.py still runs end to end (tiny farm), and its history seeding fills a
state the monitor reads as sent alerts. Figures are printed, never asserted on."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import bench_job  # bench/ is not a package: imported from the path set above

HAVE_READER = importlib.util.find_spec("reader") is not None and importlib.util.find_spec("sgmllib") is not None


def test_bench_job_runs_the_real_command_and_counts_every_message(tmp_path: Path) -> None:
    argv = [sys.executable, str(ROOT / "bench" / "bench_job.py"), "--feeds", "3", "--items", "2", "--latency", "0",
            "--history", "5", "--calibrate", "5", "--json"] + ([] if HAVE_READER else ["--no-reader"])
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout)
    first, again = result["cycles"]["all"]["monitor"], result["cycles"]["304"]["monitor"]
    assert first["new_items"] == 6 and first["alerts"] > 0
    assert first["received"] == first["messages"] > 0 and first["complete"]
    assert again["not_modified"] == 3 and again["new_items"] == 0 and again["received"] == 0
    history = result["history"][0]
    assert history["seeded"]["alerts"] == 5 and history["received"] == first["received"]
    if HAVE_READER:
        assert result["cycles"]["all"]["reader"]["entries"] == 6
        assert result["cycles"]["304"]["reader"]["new_entries"] == 0
    table = bench_job.report(result)
    assert "| (1) new, all matching | monitor |" in table and "targets (issue 12)" in table


def test_seeded_history_is_sent_alerts_with_stories_and_items(tmp_path: Path) -> None:
    from monitor.state import alerts as state_alerts
    from monitor.state import open_readonly
    from monitor.state.outbox import counts

    state = tmp_path / "state.sqlite3"
    seeded = bench_job.seed_history(state, 30, n_feeds=4)
    assert seeded == {"items": 30, "stories": 30, "story_items": 30, "alerts": 30, "outbox": 30}
    conn = open_readonly(state)
    try:
        assert counts(conn) == {"sent": 30}
        alerts = state_alerts.recent(conn, limit=100)
        assert {a.deliveries[0].channel for a in alerts} == {bench_job.CHANNEL_NAME}
        assert all(a.feed.startswith("feed-") for a in alerts)
    finally:
        conn.close()
