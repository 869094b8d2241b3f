"""``monitor.config`` (so every CLI command) must not pay for numpy; the first StoryIndex does,
and nothing in story dedup needs datasketch or scipy any more."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT


def test_config_import_leaves_numpy_unloaded_and_dedup_never_loads_datasketch_or_scipy():
    code = ("import sys, monitor.config, monitor.stories.index, monitor.alerts.route\n"
            "heavy = sorted(m for m in ('datasketch', 'scipy', 'numpy') if m in sys.modules)\n"
            "print(','.join(heavy))\n"
            "from monitor.stories.index import StoryIndex\n"
            "StoryIndex()\n"
            "print(sorted(m for m in ('datasketch', 'scipy', 'numpy') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["", "['numpy']"]


def test_worker_analysis_needs_numpy_only_not_datasketch_or_scipy():
    """Each worker process (monitor.ingest.workers) fingerprints and signs matched items: numpy
    is enough; datasketch would drag in scipy (+45 MB and 1 s per worker)."""
    code = ("import sys\n"
            "from monitor.ingest.analysis import AnalysisContext, analyze_items\n"
            "from monitor.stories.fingerprint import permutations\n"
            "from monitor.stories.settings import DedupSettings\n"
            "from monitor.types import Item\n"
            "from monitor.rules import load_rules\n"
            "context = AnalysisContext(load_rules(['rules']), DedupSettings(), permutations(128))\n"
            "text = 'قالت قوات سوريا الديمقراطية إنها سيطرت على حقل العمر النفطي شرق دير الزور. ' * 3\n"
            "[a] = analyze_items([Item(feed='f', key='k', title='حقل العمر', summary=text)], context)\n"
            "print(bool(a.matches), a.dedup.signatures.shape)\n"
            "print(sorted(m for m in ('datasketch', 'scipy') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["True (4, 128)", "[]"]


def test_reading_a_config_with_telegram_and_email_channels_loads_no_http_client():
    """`monitor status`, `alerts`, `silence` and `check` read the config and send nothing: checking
    a tgram:// or mailto:// URL must not import httpx (the Telegram sender imports it when built)."""
    code = ("import sys\n"
            "from monitor.alerts.settings import ChannelSettings\n"
            "tg = ChannelSettings(url='tgram://123456:ABCDEFGHabcdefgh/-1001')\n"
            "mail = ChannelSettings(url='mailto://user:pw@mail.example/?to=a@example.org')\n"
            "print(tg.private_url(), mail.is_email, 'httpx' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["tgram://****/-1001", "True", "False"]
