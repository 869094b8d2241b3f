"""A loopback fake of Telegram's Bot API ``sendMessage`` for end-to-end tests.

Point the REAL apprise plugin at it with
``monkeypatch.setattr(NotifyTelegram, "notify_url", server.base + "/bot")``.
It validates what real Telegram validates and tests care about: HTML parse
mode with balanced, allowed tags and known entities, at most 4,096 UTF-16
units. It behaves like Telegram under load: after a 429 it keeps answering
429 until ``retry_after`` has passed (so a client that retries early is
caught), and it can answer 5xx for the next N requests.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ALLOWED = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre", "span", "tg-spoiler",
           "blockquote", "tg-emoji"}


class _Checker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.stack: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag not in ALLOWED:
            self.errors.append(f"unsupported tag <{tag}>")
        self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unbalanced </{tag}>")
        else:
            self.stack.pop()

    def handle_entityref(self, name):
        if name not in {"lt", "gt", "amp", "quot"}:
            self.errors.append(f"unknown entity &{name};")

    def unknown_decl(self, data):
        self.errors.append("declaration")


def check_html(text: str) -> list[str]:
    """Telegram-style HTML problems in ``text`` (empty list: Telegram would accept it)."""
    checker = _Checker()
    checker.feed(text)
    checker.close()
    errors = checker.errors
    if checker.stack:
        errors.append(f"unclosed {checker.stack}")
    return errors


@dataclass
class FakeTelegram:
    token_seen: set = field(default_factory=set)
    messages: dict = field(default_factory=dict)       # chat_id -> [text, ...] accepted in order
    rejected: list = field(default_factory=list)       # (status, reason)
    fail_5xx: int = 0                                   # answer 500 to the next N requests
    answer_429: int = 0                                 # answer 429 to the next N requests...
    retry_after: int = 1                                # ...with this retry_after (and enforce it)
    blocked_until: float = 0.0
    status_always: int | None = None                    # e.g. 401: every request fails this way
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> FakeTelegram:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                status, body = fake.handle(self.path, raw)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def handle(self, path: str, raw: bytes) -> tuple[int, dict]:
        with self.lock:
            if not path.startswith("/bot") or not path.endswith("/sendMessage"):
                return 404, {"ok": False, "error_code": 404, "description": "Not Found"}
            self.token_seen.add(path[4:].split("/")[0])
            now = time.monotonic()
            if self.status_always:
                self.rejected.append((self.status_always, "forced"))
                return self.status_always, {"ok": False, "error_code": self.status_always,
                                            "description": "Unauthorized" if self.status_always == 401 else "error"}
            if now < self.blocked_until:
                self.rejected.append((429, "retried before retry_after"))
                return 429, {"ok": False, "error_code": 429, "description": "Too Many Requests: early retry",
                             "parameters": {"retry_after": self.retry_after}}
            if self.answer_429:
                self.answer_429 -= 1
                self.blocked_until = now + self.retry_after
                self.rejected.append((429, "rate limited"))
                return 429, {"ok": False, "error_code": 429,
                             "description": f"Too Many Requests: retry after {self.retry_after}",
                             "parameters": {"retry_after": self.retry_after}}
            if self.fail_5xx:
                self.fail_5xx -= 1
                self.rejected.append((502, "bad gateway"))
                return 502, {"ok": False, "error_code": 502, "description": "Bad Gateway"}
            try:
                payload = json.loads(raw)
            except ValueError:
                return 400, {"ok": False, "error_code": 400, "description": "Bad Request: not JSON"}
            text = payload.get("text", "")
            problems = []
            if payload.get("parse_mode") != "HTML":
                problems.append("parse_mode is not HTML")
            if len(text.encode("utf-16-le")) // 2 > 4096:
                problems.append("message is too long")
            problems += check_html(text)
            if problems:
                self.rejected.append((400, "; ".join(problems)))
                return 400, {"ok": False, "error_code": 400,
                             "description": "Bad Request: can't parse entities: " + "; ".join(problems)}
            self.messages.setdefault(str(payload.get("chat_id")), []).append(text)
            return 200, {"ok": True, "result": {"message_id": sum(map(len, self.messages.values()))}}
