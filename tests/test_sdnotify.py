"""sd_notify over a real AF_UNIX datagram socket, as systemd would receive it."""

from __future__ import annotations

import os
import socket
import threading
import uuid
from pathlib import Path

import pytest

from monitor.service.sdnotify import Notifier


@pytest.fixture
def receiver(tmp_path: Path):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2.0)
    yield str(path), sock
    sock.close()


def _recv(sock: socket.socket) -> str:
    return sock.recv(4096).decode()


def test_each_message_arrives_as_systemd_expects(receiver):
    path, sock = receiver
    n = Notifier.from_env({"NOTIFY_SOCKET": path})
    assert n.enabled
    assert n.ready()
    assert _recv(sock) == "READY=1"
    n.status("3 feeds\nlast poll 12:00")
    assert _recv(sock) == "STATUS=3 feeds last poll 12:00"
    n.watchdog()
    assert _recv(sock) == "WATCHDOG=1"
    n.reloading()
    lines = _recv(sock).split("\n")
    assert lines[0] == "RELOADING=1" and lines[1].startswith("MONOTONIC_USEC=")
    assert int(lines[1].split("=")[1]) > 0
    n.stopping()
    assert _recv(sock) == "STOPPING=1"
    n.close()


def test_abstract_socket_address():
    name = f"monitor-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(2.0)
    try:
        n = Notifier.from_env({"NOTIFY_SOCKET": "@" + name})
        assert n.ready()
        assert _recv(sock) == "READY=1"
        n.close()
    finally:
        sock.close()


def test_receiver_that_never_reads_does_not_hang_the_sender(receiver):
    """net.unix.max_dgram_qlen is 10: a blocking sendto would hang at the 11th."""
    path, _sock = receiver
    n = Notifier.from_env({"NOTIFY_SOCKET": path})
    done = threading.Event()
    results: list[bool] = []

    def spam() -> None:
        for _ in range(200):
            results.append(n.watchdog())
        done.set()

    t = threading.Thread(target=spam, daemon=True)
    t.start()
    assert done.wait(30), "sender blocked on a full notify socket"
    assert len(results) == 200
    assert any(results) and not all(results)  # some queued, the rest dropped
    assert n.dropped == results.count(False)
    n.close()


def test_without_notify_socket_everything_is_a_quiet_no_op():
    n = Notifier.from_env({})
    assert not n.enabled
    assert n.watchdog_interval is None
    assert n.ready() is False
    assert n.status("x") is False
    assert n.stopping() is False


def test_missing_socket_file_never_raises(tmp_path: Path):
    n = Notifier.from_env({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    for _ in range(5):
        assert n.ready() is False
    assert n.dropped == 5
    n.close()


def test_watchdog_interval_is_half_of_watchdog_usec():
    n = Notifier.from_env({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "30000000"})
    assert n.watchdog_interval == 15.0
    same_pid = {"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "4000000", "WATCHDOG_PID": str(os.getpid())}
    assert Notifier.from_env(same_pid).watchdog_interval == 2.0


@pytest.mark.parametrize("env", [
    {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"},          # pings expected from another process
    {"WATCHDOG_USEC": "garbage"},
    {"WATCHDOG_USEC": "0"},
    {"WATCHDOG_USEC": "-5"},
])
def test_no_watchdog_when_not_meant_for_us(env):
    assert Notifier.from_env({"NOTIFY_SOCKET": "/x", **env}).watchdog_interval is None
