"""``monitor.config`` (so every CLI command) must not pay for datasketch/scipy; the first StoryIndex does."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT


def test_config_import_leaves_datasketch_scipy_numpy_unloaded():
    code = ("import sys, monitor.config, monitor.dedup, monitor.route\n"
            "heavy = sorted(m for m in ('datasketch', 'scipy', 'numpy') if m in sys.modules)\n"
            "print(','.join(heavy))\n"
            "from monitor.dedup import StoryIndex\n"
            "StoryIndex()\n"
            "print('datasketch' in sys.modules and 'numpy' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["", "True"]
