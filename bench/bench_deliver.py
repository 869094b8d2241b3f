"""Benchmark: one message refused forever must not hold up the others (issue 16's reproduction).

    .venv/bin/python bench/bench_deliver.py [--seconds 40] [--before REV] [--repeats 1]

What runs is the real daemon, ``monitor run`` as a process, polling one
loopback feed of ten bulletins (each its own story, each firing the default
rules) and delivering to two channels as a new user would configure them
(default backoff): a JSON webhook through Apprise (``json://``) that answers
HTTP 500 to bulletin 3 every time, and an SMTP server (aiosmtpd) that answers
451 to bulletin 3's DATA every time. The bench samples, every 0.25 s, how
many of the nine other bulletins each server has accepted, and counts how
often bulletin 3 was tried; after ``--seconds`` the daemon gets SIGTERM and
the bench reads bulletin 3's outbox rows.

The peer, run in the same invocation: the code at ``--before`` (default: main
before the delivery work was merged), its ``monitor`` and ``rules`` extracted with ``git archive``, run the same
way, with the same feed, servers and config (without ``give_up``, which it
does not know). The current code runs with ``give_up: {server_error,
unknown: {deadline: 20s}}`` so that the refused bulletin's deadline falls
inside the run; with the default rules (6 h) it would still be set aside and
retried, and the nine others would arrive just the same.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parent.parent
PLACES = ["البوكمال", "الميادين", "دير الزور", "حقل العمر", "البصيرة", "الشدادي", "هجين", "القورية", "العشارة",
          "الصالحية"]
REFUSED = 3
N = 10


def feed() -> bytes:
    items = "".join(
        f"<item><title>{escape(f'بلاغ {i}: قسد تتقدم في {PLACES[i]} قرب البوكمال')}</title>"
        f"<link>https://news.example/bulletins/{i}</link><guid>bulletin-{i}</guid>"
        f"<pubDate>Mon, 23 Oct 2017 08:{i:02d}:00 +0300</pubDate><description></description></item>"
        for i in range(N))
    return ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>بلاغات</title>'
            f"<link>https://news.example/</link><description>d</description>{items}</channel></rss>").encode()


def bulletin(text: str) -> int | None:
    marker = "https://news.example/bulletins/"
    if marker not in text:
        return None
    digits = text.split(marker, 1)[1][:3]
    return int("".join(c for c in digits if c.isdigit()) or -1)


class Servers:
    """The feed, the webhook and the SMTP server, with what each accepted and refused."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.lock = threading.Lock()
        self.hook_ok: list[tuple[float, int]] = []
        self.hook_refused = 0
        self.mail_ok: list[tuple[float, int]] = []
        self.mail_refused = 0
        body = feed()
        servers = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                message = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0)))).get("message", "")
                n = bulletin(message)
                with servers.lock:
                    if n == REFUSED:
                        servers.hook_refused += 1
                        status = 500
                    else:
                        servers.hook_ok.append((time.monotonic(), n if n is not None else -1))
                        status = 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        class Mail:
            async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
                raw: bytes = getattr(envelope, "original_content", None) or getattr(envelope, "content", None) or b""
                parsed = email.message_from_bytes(raw, policy=email.policy.default)
                part = parsed.get_body(("plain",)) if hasattr(parsed, "get_body") else None
                n = bulletin(part.get_content() if part is not None else "")
                with servers.lock:
                    if n == REFUSED:
                        servers.mail_refused += 1
                        return "451 4.7.1 try again later"
                    servers.mail_ok.append((time.monotonic(), n if n is not None else -1))
                return "250 OK"

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.smtp_port = _free_port()
        self.smtp = Controller(Mail(), hostname="127.0.0.1", port=self.smtp_port)
        self.smtp.start()

    @property
    def http_port(self) -> int:
        return int(self.http.server_address[1])

    def close(self) -> None:
        self.smtp.stop()
        self.http.shutdown()
        self.http.server_close()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(code: Path, label: str, seconds: float, current: bool) -> dict[str, object]:
    servers = Servers()
    folder = Path(tempfile.mkdtemp(prefix="bench-deliver-"))
    hook: dict[str, object] = {"url": f"json://127.0.0.1:{servers.http_port}/hook"}
    mail: dict[str, object] = {"url": f"mailto://127.0.0.1:{servers.smtp_port}?mode=insecure"
                                      "&from=monitor@example.org&to=analyst@example.org"}
    if current:
        rule = {"attempts": 1000, "deadline": "20s"}
        hook["give_up"] = {"unknown": rule}
        mail["give_up"] = {"server_error": rule}
    settings: dict[str, object] = {
        "state_path": str(folder / "state.sqlite3"), "rules": [str(code / "rules")], "log_level": "WARNING",
        "feeds": [{"name": "bulletins", "url": f"http://127.0.0.1:{servers.http_port}/feed.xml", "interval": "1h"}],
        "channels": {"hook": hook, "mail": mail},
        "fetch": {"allow_private_addresses": True},  # the feeds are on loopback
    }
    if current:
        settings["defaults"] = {"first_poll": "all"}  # dated bulletins, all of them alerting on the first poll
    config = folder / "config.json"  # JSON is YAML: no yaml import needed here
    config.write_text(json.dumps(settings, ensure_ascii=False), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(code)}
    env.pop("NOTIFY_SOCKET", None)
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "run", "--config", str(config)], env=env, cwd=folder,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while time.monotonic() - started < seconds and proc.poll() is None:
        time.sleep(0.25)
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    servers.close()
    if proc.returncode not in (0, -signal.SIGTERM):
        print(err.decode("utf-8", "replace")[-2000:], file=sys.stderr)
    with sqlite3.connect(folder / "state.sqlite3") as db:
        db.row_factory = sqlite3.Row
        columns = {r[1] for r in db.execute("PRAGMA table_info(outbox)")}
        rows = {r["channel"]: r for r in db.execute(
            "SELECT o.channel AS channel, o.state AS state, o.attempts AS attempts"
            + (", o.reason AS reason" if "reason" in columns else ", NULL AS reason")
            + " FROM outbox o JOIN alerts a ON a.id = o.alert_id WHERE a.payload LIKE ?",
            (f'%bulletins/{REFUSED}"%',))}
    out: dict[str, object] = {"label": label}
    for channel, accepted, refused in (("hook", servers.hook_ok, servers.hook_refused),
                                       ("mail", servers.mail_ok, servers.mail_refused)):
        others = sorted({n for _, n in accepted if n != REFUSED and n >= 0})
        done = sorted(t for t, n in accepted if n != REFUSED)
        row = rows.get(channel)
        out[channel] = {
            "others_delivered": len(others),
            "seconds_to_all_others": round(done[N - 2] - started, 1) if len(done) >= N - 1 else None,
            "refused_attempts": refused,
            "refused_state": (f"{row['state']}" + (f" ({row['reason']})" if row["reason"] else "")) if row else "?",
        }
    return out


BEFORE_DELIVERY_WORK = "4c210e8^1"  # main just before the delivery branch (issue 16) was merged


def extract(rev: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="bench-deliver-before-"))
    archive = folder / "code.tar"
    with archive.open("wb") as fh:
        subprocess.run(["git", "-C", str(ROOT), "archive", rev, "monitor", "rules"], stdout=fh, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(folder, filter="data")
    return folder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--before", default=BEFORE_DELIVERY_WORK,
                        help=f"git revision of the peer (default {BEFORE_DELIVERY_WORK}: main before issue 16)")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    before = args.before
    runs = []
    for _ in range(args.repeats):
        if before:
            runs.append(run(extract(before), f"before ({before[:8]})", args.seconds, current=False))
        runs.append(run(ROOT, "this branch", args.seconds, current=True))
    print(f"\nten bulletins, bulletin {REFUSED} refused forever by both servers, "
          f"{args.seconds:.0f} s of `monitor run` (seconds counted from the process start)\n")
    print("| code | channel | other 9 delivered | seconds to all 9 | attempts on the refused one | its state |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in runs:
        for channel in ("hook", "mail"):
            c = r[channel]
            assert isinstance(c, dict)
            name = "webhook (Apprise json://, HTTP 500)" if channel == "hook" else "SMTP (451 on DATA)"
            print(f"| {r['label']} | {name} | {c['others_delivered']} / 9 | {c['seconds_to_all_others'] or '-'} | "
                  f"{c['refused_attempts']} | {c['refused_state']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
