"""A loopback fake of Telegram's Bot API (``sendMessage``, ``editMessageText``) for end-to-end tests.

Point the native sender at it with ``MONITOR_TELEGRAM_API=<fake.base>`` (the
variable exists for tests only). It checks what real Telegram checks and the
tests care about: HTML parse mode with balanced, allowed tags and known
entities, at most 4,096 UTF-16 units, ``link_preview_options`` and
``reply_parameters`` shaped as the Bot API defines them, a reply to a message
that exists in that chat (unless ``allow_sending_without_reply``), a forum
topic that exists, an edit of a message that exists and really changes.

It behaves like Telegram under load and failure, on an injectable clock:
after a 429 it keeps answering 429 until ``retry_after`` has passed (a client
that retries early is caught), it can answer 5xx for the next N requests or
until a time, refuse chosen messages with 400 "can't parse entities", and
answer for a group that was upgraded to a supergroup with
``parameters.migrate_to_chat_id``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
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


class VirtualClock:
    """Time that passes only when someone sleeps: an hour of outage in milliseconds.

    Give ``time`` to the fake and to the ``Deliverer(clock=...)``, ``sleep`` to ``Deliverer(sleep=...)``.
    """

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)


@dataclass
class FakeMessage:
    """A message as the chat shows it: its text now, and what it was sent with."""

    message_id: int
    text: str
    reply_to: int | None = None
    thread_id: int | None = None
    preview_disabled: bool | None = None
    silent: bool = False
    edits: list[str] = field(default_factory=list)


@dataclass
class FakeTelegram:
    clock: Callable[[], float] = time.monotonic
    token_seen: set = field(default_factory=set)
    chats: dict = field(default_factory=dict)          # chat_id -> [FakeMessage] accepted, in order
    requests: list = field(default_factory=list)       # (method, payload) of every request that reached us
    rejected: list = field(default_factory=list)       # (status, reason)
    fail_5xx: int = 0                                   # answer 502 to the next N requests
    fail_5xx_until: float = 0.0                         # answer 502 to every request before this clock time
    answer_429: int = 0                                 # answer 429 to the next N requests...
    retry_after: int = 1                                # ...with this retry_after (and enforce it)
    blocked_until: float = 0.0
    status_always: int | None = None                    # e.g. 401: every request fails this way...
    description: str | None = None                      # ...with this description (a hostile one may echo secrets)
    refuse: Callable[[str], bool] | None = None         # texts answered 400 "can't parse entities", every time
    migrated: dict = field(default_factory=dict)        # old chat id -> new chat id (int): "upgraded to a supergroup"
    topics: set | None = None                           # forum topics of every chat (None: not a forum)
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
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        return self

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def messages(self) -> dict[str, list[str]]:
        """chat id -> the texts of the messages sent there, in order (as first sent)."""
        with self.lock:
            return {chat: [m.edits[0] if m.edits else m.text for m in msgs] for chat, msgs in self.chats.items()}

    def chat(self, chat_id: str) -> list[FakeMessage]:
        with self.lock:
            return list(self.chats.get(str(chat_id), []))

    @staticmethod
    def _error(status: int, description: str, **parameters) -> tuple[int, dict]:
        body = {"ok": False, "error_code": status, "description": description}
        if parameters:
            body["parameters"] = parameters
        return status, body

    def handle(self, path: str, raw: bytes) -> tuple[int, dict]:
        with self.lock:
            method = path.rsplit("/", 1)[-1]
            if not path.startswith("/bot") or method not in ("sendMessage", "editMessageText"):
                return self._error(404, "Not Found")
            self.token_seen.add(path[4:].split("/")[0])
            try:
                payload = json.loads(raw)
            except ValueError:
                return self._error(400, "Bad Request: not JSON")
            self.requests.append((method, payload))
            now = self.clock()
            if self.status_always:
                self.rejected.append((self.status_always, "forced"))
                return self._error(self.status_always, self.description
                                   or ("Unauthorized" if self.status_always == 401 else "Forbidden: error"))
            if now < self.blocked_until:
                self.rejected.append((429, "retried before retry_after"))
                return self._error(429, "Too Many Requests: early retry", retry_after=self.retry_after)
            if self.answer_429:
                self.answer_429 -= 1
                self.blocked_until = now + self.retry_after
                self.rejected.append((429, "rate limited"))
                return self._error(429, f"Too Many Requests: retry after {self.retry_after}",
                                   retry_after=self.retry_after)
            if self.fail_5xx or now < self.fail_5xx_until:
                self.fail_5xx = max(0, self.fail_5xx - 1)
                self.rejected.append((502, "bad gateway"))
                return 502, {"ok": False, "error_code": 502, "description": "Bad Gateway"}
            chat = str(payload.get("chat_id"))
            if chat in self.migrated:
                self.rejected.append((400, "migrated"))
                return self._error(400, "Bad Request: group chat was upgraded to a supergroup chat",
                                   migrate_to_chat_id=self.migrated[chat])
            problems = self._check(payload)
            text = payload.get("text", "")
            if not problems and self.refuse is not None and self.refuse(text):
                problems = ["Unsupported start tag \"x\" at byte offset 12"]
            if problems:
                description = "Bad Request: " + ("message is too long" if "message is too long" in problems
                                                 else "can't parse entities: " + "; ".join(problems))
                self.rejected.append((400, "; ".join(problems)))
                return self._error(400, description)
            thread = payload.get("message_thread_id")
            if thread is not None and (self.topics is None or thread not in self.topics):
                self.rejected.append((400, "no such topic"))
                return self._error(400, "Bad Request: message thread not found")
            messages = self.chats.setdefault(chat, [])
            if method == "editMessageText":
                return self._edit(messages, payload)
            reply = payload.get("reply_parameters")
            reply_to = None
            if reply is not None:
                target = reply.get("message_id")
                if any(m.message_id == target for m in messages):
                    reply_to = target
                elif not reply.get("allow_sending_without_reply"):
                    self.rejected.append((400, "reply to a missing message"))
                    return self._error(400, "Bad Request: message to be replied not found")
            preview = payload.get("link_preview_options")
            message = FakeMessage(len(messages) + 1, text, reply_to=reply_to, thread_id=thread,
                                  preview_disabled=preview.get("is_disabled") if preview else None,
                                  silent=bool(payload.get("disable_notification")))
            messages.append(message)
            return 200, {"ok": True, "result": {"message_id": message.message_id, "chat": {"id": chat},
                                                "text": text}}

    def _edit(self, messages: list[FakeMessage], payload: dict) -> tuple[int, dict]:
        target = next((m for m in messages if m.message_id == payload.get("message_id")), None)
        if target is None:
            self.rejected.append((400, "edit of a missing message"))
            return self._error(400, "Bad Request: message to edit not found")
        if target.text == payload["text"]:
            return self._error(400, "Bad Request: message is not modified: specified new message content and "
                                    "reply markup are exactly the same as a current content and reply markup "
                                    "of the message")
        target.edits.append(target.text)
        target.text = payload["text"]
        return 200, {"ok": True, "result": {"message_id": target.message_id, "text": target.text}}

    @staticmethod
    def _check(payload: dict) -> list[str]:
        """What real Telegram would refuse in a sendMessage or editMessageText payload."""
        problems = []
        text = payload.get("text")
        if not isinstance(text, str) or not text.strip():
            return ["message text is empty"]
        if payload.get("parse_mode") != "HTML":
            problems.append("parse_mode is not HTML")
        if len(text.encode("utf-16-le")) // 2 > 4096:
            problems.append("message is too long")
        preview = payload.get("link_preview_options")
        if preview is not None and (not isinstance(preview, dict)
                                    or not isinstance(preview.get("is_disabled", False), bool)):
            problems.append("link_preview_options must be an object with a boolean is_disabled")
        reply = payload.get("reply_parameters")
        if reply is not None and (not isinstance(reply, dict) or not isinstance(reply.get("message_id"), int)):
            problems.append("reply_parameters must be an object with an integer message_id")
        thread = payload.get("message_thread_id")
        if thread is not None and not isinstance(thread, int):
            problems.append("message_thread_id must be an integer")
        if "message_id" in payload and not isinstance(payload["message_id"], int):
            problems.append("message_id must be an integer")
        return problems + check_html(text)
