"""deploy/: the systemd unit passes systemd-analyze, install.sh installs into a
temporary root idempotently, and --uninstall keeps only the state."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "deploy" / "monitor.service"
INSTALL = REPO / "deploy" / "install.sh"
EXEC_START = "/opt/monitor/venv/bin/monitor"

needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze not installed (Debian package 'systemd'; `make test` installs it when run as root)",
)


def _settings(text: str) -> dict[str, list[str]]:
    """Unit file as key -> values (keys may repeat in systemd units)."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;[" or "=" not in line:
            continue
        key, value = line.split("=", 1)
        out.setdefault(key.strip(), []).append(value.strip())
    return out


def _verify(unit_text: str, tmp: Path, dropins: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`systemd-analyze verify` on a copy whose ExecStart binary exists.

    verify fails when the ExecStart binary is missing, so the unit is rendered
    into a temporary unit directory with ExecStart pointing at a stub; drop-ins
    are found through SYSTEMD_UNIT_PATH, as systemd itself would find them.
    """
    stub = tmp / "stubroot" / EXEC_START.lstrip("/")
    stub.parent.mkdir(parents=True, exist_ok=True)
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    units = tmp / "units"
    (units / "monitor.service.d").mkdir(parents=True, exist_ok=True)
    (units / "monitor.service").write_text(unit_text.replace(EXEC_START, str(stub)))
    for name, text in (dropins or {}).items():
        (units / "monitor.service.d" / name).write_text(text)
    env = {**os.environ, "SYSTEMD_UNIT_PATH": f"{units}:", "SYSTEMD_LOG_COLOR": "0"}
    return subprocess.run(["systemd-analyze", "verify", "monitor.service"], cwd=units, env=env,
                          capture_output=True, text=True, timeout=60)


def _exposure(unit_path: Path) -> float:
    proc = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager", str(unit_path)],
                          capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", proc.stdout)
    assert match, proc.stdout + proc.stderr
    return float(match.group(1))


def test_unit_declares_what_a_long_running_service_needs():
    s = _settings(UNIT.read_text())
    assert s["Type"] == ["notify"]
    assert s["ExecStart"] == [f"{EXEC_START} run --config /etc/monitor/config.yaml"]
    assert "-HUP" in s["ExecReload"][0] and "$MAINPID" in s["ExecReload"][0]
    assert int(s["WatchdogSec"][0]) > 0
    assert s["Restart"] == ["on-failure"]
    assert s["StateDirectory"] == ["monitor"] and s["ConfigurationDirectory"] == ["monitor"]
    assert int(s["TimeoutStopSec"][0]) > 0
    assert s["DynamicUser"] == ["yes"]
    assert s["EnvironmentFile"] == ["-/etc/monitor/monitor.env"]
    assert s["ProtectSystem"] == ["strict"] and s["NoNewPrivileges"] == ["yes"]
    assert s["CapabilityBoundingSet"] == [""]


@needs_analyze
def test_security_exposure_is_at_most_1_5():
    assert _exposure(UNIT) <= 1.5


@needs_analyze
def test_verify_prints_nothing(tmp_path: Path):
    proc = _verify(UNIT.read_text(), tmp_path)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


@needs_analyze
def test_verify_helper_does_catch_mistakes(tmp_path: Path):
    """The gate above can fail: an unknown key is reported on stderr."""
    proc = _verify(UNIT.read_text().replace("Type=notify", "Type=notify\nWatchdogSecs=5"), tmp_path)
    assert "WatchdogSecs" in proc.stderr


# --- install.sh -------------------------------------------------------------

def _source_tree(tmp: Path, *, with_examples: bool) -> Path:
    """A copy of the files install.sh reads, with or without config/rules."""
    src = tmp / "src"
    shutil.copytree(REPO / "deploy", src / "deploy")
    if with_examples:
        (src / "examples").mkdir()
        (src / "examples" / "config.yaml").write_text("feeds: []\n# example\n")
        (src / "rules" / "pack").mkdir(parents=True)
        (src / "rules" / "entities.yaml").write_text("rules: []\n")
        (src / "rules" / "pack" / "more.yml").write_text("rules: []\n")
        (src / "rules" / "README.md").write_text("not a rules file\n")
    return src


def _run_install(src: Path, root: Path, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(["sh", str(src / "deploy" / "install.sh"), "--root", str(root), "--no-venv", *args],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def _snapshot(root: Path) -> dict[str, tuple]:
    out = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            detail = os.readlink(path)
        elif stat.S_ISREG(st.st_mode):
            detail = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            detail = None
        out[str(path.relative_to(root))] = (stat.filemode(st.st_mode), st.st_uid, st.st_mtime_ns, detail)
    return out


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_install_into_a_root_puts_every_file_in_place(tmp_path: Path):
    src, root = _source_tree(tmp_path, with_examples=True), tmp_path / "root"
    _run_install(src, root)
    etc = root / "etc" / "monitor"
    assert (etc / "config.yaml").read_text() == "feeds: []\n# example\n"
    assert (etc / "rules" / "entities.yaml").is_file() and (etc / "rules" / "pack" / "more.yml").is_file()
    assert not (etc / "rules" / "README.md").exists()
    assert _mode(etc) == 0o755 and _mode(etc / "config.yaml") == 0o644
    assert _mode(etc / "rules" / "entities.yaml") == 0o644
    assert _mode(etc / "monitor.env") == 0o600  # secrets: root only
    assert _mode(etc / "credentials") == 0o700
    unit = root / "etc/systemd/system/monitor.service"
    assert unit.read_text() == UNIT.read_text() and _mode(unit) == 0o644
    wants = root / "etc/systemd/system/multi-user.target.wants/monitor.service"
    assert os.readlink(wants) == "/etc/systemd/system/monitor.service"
    assert os.readlink(root / "usr/local/bin/monitor") == EXEC_START
    if os.geteuid() == 0:
        assert (etc / "monitor.env").stat().st_uid == 0


def test_second_run_changes_nothing_and_user_edits_survive(tmp_path: Path):
    src, root = _source_tree(tmp_path, with_examples=True), tmp_path / "root"
    _run_install(src, root)
    config = root / "etc/monitor/config.yaml"
    config.write_text("feeds: [edited]\n")
    before = _snapshot(root)
    proc = _run_install(src, root)
    assert _snapshot(root) == before
    assert "installed" not in proc.stdout
    assert config.read_text() == "feeds: [edited]\n"


def test_missing_examples_and_rules_are_reported_not_fatal(tmp_path: Path):
    src, root = _source_tree(tmp_path, with_examples=False), tmp_path / "root"
    proc = _run_install(src, root)
    assert "examples/config.yaml not found" in proc.stdout
    assert (root / "etc/systemd/system/monitor.service").is_file()


def test_the_repository_itself_installs(tmp_path: Path):
    """Whatever examples/ and rules/ the repo has now land under /etc/monitor."""
    root = tmp_path / "root"
    proc = subprocess.run(["sh", str(INSTALL), "--root", str(root), "--no-venv"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    if (REPO / "examples" / "config.yaml").is_file():
        assert (root / "etc/monitor/config.yaml").read_bytes() == (REPO / "examples/config.yaml").read_bytes()
    for rules_file in (REPO / "rules").rglob("*.yaml") if (REPO / "rules").is_dir() else []:
        assert (root / "etc/monitor/rules" / rules_file.relative_to(REPO / "rules")).is_file()


def test_credential_files_become_load_credential_lines(tmp_path: Path):
    src, root = _source_tree(tmp_path, with_examples=True), tmp_path / "root"
    _run_install(src, root)
    creds = root / "etc/monitor/credentials"
    (creds / "TELEGRAM_BOT_TOKEN").write_text("123:abc")
    _run_install(src, root)
    dropin = (root / "etc/systemd/system/monitor.service.d/credentials.conf").read_text()
    assert "LoadCredential=TELEGRAM_BOT_TOKEN:/etc/monitor/credentials/TELEGRAM_BOT_TOKEN" in dropin
    assert "123:abc" not in dropin


@needs_analyze
def test_installed_unit_and_drop_in_pass_verify_and_security(tmp_path: Path):
    src, root = _source_tree(tmp_path, with_examples=True), tmp_path / "root"
    _run_install(src, root)
    (root / "etc/monitor/credentials/SMTP_PASSWORD").write_text("x")
    _run_install(src, root)
    unit = root / "etc/systemd/system/monitor.service"
    dropin = (root / "etc/systemd/system/monitor.service.d/credentials.conf").read_text()
    proc = _verify(unit.read_text(), tmp_path, {"credentials.conf": dropin})
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    assert _exposure(unit) <= 1.5


def test_prefix_moves_the_venv_and_exec_start(tmp_path: Path):
    src, root = _source_tree(tmp_path, with_examples=False), tmp_path / "root"
    _run_install(src, root, "--prefix", "/srv/monitor")
    unit = _settings((root / "etc/systemd/system/monitor.service").read_text())
    assert unit["ExecStart"][0].startswith("/srv/monitor/venv/bin/monitor run ")
    assert os.readlink(root / "usr/local/bin/monitor") == "/srv/monitor/venv/bin/monitor"


def test_uninstall_removes_everything_but_the_state(tmp_path: Path):
    src, root = _source_tree(tmp_path, with_examples=True), tmp_path / "root"
    _run_install(src, root)
    (root / "opt/monitor/venv/bin").mkdir(parents=True)  # as a real install would have
    state = root / "var/lib/private/monitor/state.sqlite3"
    state.parent.mkdir(parents=True)
    state.write_bytes(b"state")
    _run_install(src, root, "--uninstall")
    left = sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir())
    assert left == ["var/lib/private/monitor/state.sqlite3"]
    assert state.read_bytes() == b"state"
    _run_install(src, root, "--uninstall")  # idempotent too


def test_uninstall_keep_config(tmp_path: Path):
    src, root = _source_tree(tmp_path, with_examples=True), tmp_path / "root"
    _run_install(src, root)
    _run_install(src, root, "--uninstall", "--keep-config")
    assert (root / "etc/monitor/config.yaml").is_file()
    assert not (root / "etc/systemd/system/monitor.service").exists()


def test_unknown_option_is_refused(tmp_path: Path):
    proc = subprocess.run(["sh", str(INSTALL), "--root", str(tmp_path), "--bogus"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "unknown option" in proc.stderr


def test_install_script_is_valid_posix_sh():
    proc = subprocess.run(["sh", "-n", str(INSTALL)], capture_output=True, text=True, timeout=30)
    assert (proc.returncode, proc.stderr) == (0, "")


def test_readme_documents_running_as_a_service():
    text = (REPO / "deploy" / "README.md").read_text()
    for needle in ("## Run as a service", "sudo deploy/install.sh", "--uninstall", "journalctl -u monitor",
                   "systemctl reload monitor", "/etc/monitor/monitor.env", "$CREDENTIALS_DIRECTORY",
                   "/var/lib/monitor"):
        assert needle in text, needle
