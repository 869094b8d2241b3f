"""Telegram through the Bot API itself (httpx and its JSON answers), not through Apprise.

Why native: the Bot API answers every call with ``ok``, ``error_code``,
``description`` and ``parameters`` (``retry_after``, ``migrate_to_chat_id``),
and a sent message's ``message_id``. With those a follow-up can be a reply to
the story's first message (``reply_parameters``) or an edit of it
(``editMessageText``), a 429 is waited out for exactly as long as Telegram
asks, and a group upgraded to a supergroup is followed.

The channel URL keeps Apprise's form, ``tgram://TOKEN/CHAT[:TOPIC]`` with
``?topic=``, ``?silent=yes`` and ``?preview=yes``, so configs do not change.
One chat per channel: message ids belong to a chat.

Message ids are stored as ``CHAT/ID``: after a chat moved, an id of the old
chat is never used to reply to (or edit) an unrelated message of the new one.

``MONITOR_TELEGRAM_API`` (for tests only) replaces ``https://api.telegram.org``
with a loopback fake of the Bot API.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar
from urllib.parse import parse_qsl, unquote

from monitor.alerts.senders import FailureReason, MessageStyle, OutgoingMessage, SendResult, SentAs
from monitor.secrets import redact

if TYPE_CHECKING:
    import httpx

__all__ = ["TelegramTarget", "TelegramSender", "parse_tgram", "classify", "API_ENV", "DEFAULT_API"]

log = logging.getLogger(__name__)

#: Environment variable naming the Bot API base URL. For tests only (a loopback fake).
API_ENV = "MONITOR_TELEGRAM_API"
DEFAULT_API = "https://api.telegram.org"

_URL = re.compile(r"^(?P<scheme>tgram|telegram)://(?:bot)?(?P<a>[0-9]+)(?::|%3A)(?P<b>[A-Za-z0-9_-]+)"
                  r"(?P<path>/[^?#]*)?(?:\?(?P<query>[^#]*))?$", re.IGNORECASE)
_CHAT = re.compile(r"^(?P<chat>-?[0-9]{1,32}|@?[A-Za-z_][A-Za-z0-9_]{3,})(?:(?::|%3A)(?P<topic>[0-9]+))?$")
_OPTIONS = {"topic", "thread", "silent", "preview", "to"}
_TRUE = {"yes", "true", "1", "on", "y"}

#: Telegram descriptions that mean "this destination cannot be reached with these credentials":
#: every message would fail the same way, so they are the channel's problem, not the message's.
_DESTINATION = re.compile(r"chat not found|not enough rights|have no rights|bot is not a member|"
                          r"bot was blocked|bot was kicked|thread not found|topic_closed|topic closed|"
                          r"need administrator rights|user is deactivated|chat_write_forbidden", re.IGNORECASE)
_TOO_LONG = re.compile(r"too long|message_too_long|entities_too_long", re.IGNORECASE)
#: An edit that cannot be applied: send the update as a reply instead.
_NOT_EDITABLE = re.compile(r"message to edit not found|message can't be edited|message_id_invalid|"
                           r"message can't be found", re.IGNORECASE)
_NOT_MODIFIED = re.compile(r"message is not modified", re.IGNORECASE)


@dataclass(frozen=True)
class TelegramTarget:
    """What a ``tgram://`` URL names. ``token`` is a secret: never log or show it."""

    token: str
    chat: str
    topic: int | None = None
    silent: bool = False
    preview: bool = False

    def __repr__(self) -> str:  # a target in a traceback or a log line must not carry the token
        return f"TelegramTarget(chat={self.chat!r}, topic={self.topic!r})"


def parse_tgram(url: str) -> TelegramTarget:
    """Parse ``tgram://TOKEN/CHAT[:TOPIC][?topic=N&silent=yes&preview=yes]``; ValueError says what is wrong."""
    m = _URL.match(url.strip())
    if m is None:
        raise ValueError("a Telegram URL looks like tgram://BOT_TOKEN/CHAT_ID (the token as BotFather gave it)")
    query = [(k.lower(), v) for k, v in parse_qsl(m.group("query") or "", keep_blank_values=True)]
    unknown = sorted({k for k, _ in query} - _OPTIONS)
    if unknown:
        raise ValueError(f"unsupported Telegram URL option(s) {', '.join(unknown)}; "
                         f"known: {', '.join(sorted(_OPTIONS))}")
    options = dict(query)
    targets = [unquote(p) for p in (m.group("path") or "").split("/") if p]
    targets += [t for t in re.split(r"[\s,]+", options.get("to", "")) if t]
    if len(targets) != 1:
        raise ValueError("name exactly one chat: tgram://BOT_TOKEN/CHAT_ID (one channel per chat: "
                         "message ids, replies and edits belong to one chat)")
    chat_match = _CHAT.match(targets[0])
    if chat_match is None:
        raise ValueError(f"{targets[0]!r} is not a chat id (-100123...) or a @channel name")
    chat = chat_match.group("chat")
    if not chat.lstrip("-").isdigit() and not chat.startswith("@"):
        chat = "@" + chat
    topic_text = chat_match.group("topic") or options.get("topic") or options.get("thread")
    if topic_text is not None and not topic_text.isdigit():
        raise ValueError(f"topic must be a number (the forum topic's message_thread_id), got {topic_text!r}")
    return TelegramTarget(token=f"{m.group('a')}:{m.group('b')}", chat=chat,
                          topic=int(topic_text) if topic_text else None,
                          silent=options.get("silent", "").lower() in _TRUE,
                          preview=options.get("preview", "").lower() in _TRUE)


def api_base() -> str:
    """The Bot API base URL: Telegram's, unless a test points ``MONITOR_TELEGRAM_API`` at a fake."""
    base = os.environ.get(API_ENV, "").strip() or DEFAULT_API
    if not base.startswith(("https://", "http://")):
        raise ValueError(f"{API_ENV} must be an http(s) URL")
    return base.rstrip("/")


def classify(status: int, error_code: int | None, description: str) -> FailureReason:
    """One failure reason for a Bot API answer (HTTP status, JSON ``error_code``, ``description``)."""
    code = error_code or status
    if code == 429:
        return FailureReason.RATE_LIMITED
    if code >= 500:
        return FailureReason.SERVER_ERROR
    if code == 413 or (code == 400 and _TOO_LONG.search(description)):
        return FailureReason.TOO_LARGE
    if code in (401, 403, 404) or _DESTINATION.search(description):
        return FailureReason.AUTH
    if code == 408:
        return FailureReason.TIMEOUT
    if code == 400:
        return FailureReason.BAD_REQUEST
    return FailureReason.UNKNOWN


@dataclass(frozen=True)
class _Answer:
    """One Bot API answer, decoded."""

    ok: bool
    status: int
    message_id: int | None = None
    error_code: int | None = None
    description: str = ""
    retry_after: float | None = None
    migrate_to: str | None = None
    transport: SendResult | None = None  # no answer at all (timeout, refused): the failure to report


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


class TelegramSender:
    """``sendMessage`` and ``editMessageText`` for one chat."""

    style: ClassVar[MessageStyle] = MessageStyle.TELEGRAM
    threads: ClassVar[bool] = True
    edits: ClassVar[bool] = True

    def __init__(self, target: TelegramTarget, *, topic: int | None = None, link_preview: bool | None = None,
                 timeout: float = 30.0, api: str | None = None) -> None:
        self.target = target
        self.chat = target.chat
        self.topic = topic if topic is not None else target.topic
        self.link_preview = target.preview if link_preview is None else link_preview
        self._base = (api or api_base()).rstrip("/")
        # httpx is imported here, not at the top: the config reads parse_tgram of this module to
        # check a tgram:// URL, and `monitor status`, `alerts` or `check` send nothing (~80 ms)
        import httpx

        self._client: httpx.AsyncClient = httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)))

    def follow(self, chat: str) -> None:
        """Send to ``chat`` from now on (the group was upgraded; remembered across restarts by the deliverer)."""
        self.chat = chat

    async def aclose(self) -> None:
        await self._client.aclose()

    async def send(self, message: OutgoingMessage) -> SendResult:
        text = message.html if message.html is not None else message.text
        moved: str | None = None
        if message.edit is not None and (target := self._own(message.edit)) is not None:
            answer, moved = await self._call("editMessageText", {"message_id": target, "text": text})
            if answer.ok or (answer.error_code == 400 and _NOT_MODIFIED.search(answer.description)):
                return SendResult.ok(message.edit, SentAs.EDIT, moved_to=moved)
            if not (answer.error_code == 400 and _NOT_EDITABLE.search(answer.description)):
                return self._failure(answer, moved)
            log.info("telegram chat %s: message %s cannot be edited (%s); sending the update as a reply",
                     self.chat, target, answer.description[:120])
        payload: dict[str, object] = {"text": text}
        reply = self._own(message.reply_to) if message.reply_to is not None else None
        if reply is not None:
            # If the first message was deleted, Telegram still delivers the update, unthreaded.
            payload["reply_parameters"] = {"message_id": reply, "allow_sending_without_reply": True}
        if self.silent:
            payload["disable_notification"] = True
        answer, moved_now = await self._call("sendMessage", payload)
        moved = moved_now or moved
        if not answer.ok:
            return self._failure(answer, moved)
        message_id = f"{self.chat}/{answer.message_id}" if answer.message_id is not None else None
        return SendResult.ok(message_id, SentAs.REPLY if reply is not None else SentAs.MESSAGE, moved_to=moved)

    @property
    def silent(self) -> bool:
        return self.target.silent

    def _own(self, message_id: str) -> int | None:
        """The numeric id of a message of the current chat (None: another chat's, or not ours)."""
        chat, _, number = message_id.rpartition("/")
        return int(number) if chat == self.chat and number.isdigit() else None

    async def _call(self, method: str, fields: Mapping[str, object]) -> tuple[_Answer, str | None]:
        """POST one method to the current chat, following one supergroup migration."""
        answer = await self._post(method, self._payload(fields))
        if answer.migrate_to is None or answer.migrate_to == self.chat:
            return answer, None
        old, self.chat = self.chat, answer.migrate_to
        log.warning("telegram chat %s was upgraded to supergroup %s: sending there from now on", old, self.chat)
        if method == "editMessageText":  # the old chat's message ids do not exist in the new chat
            return _Answer(False, 400, error_code=400, description="message to edit not found (chat moved)"), self.chat
        return await self._post(method, self._payload(fields)), self.chat

    def _payload(self, fields: Mapping[str, object]) -> dict[str, object]:
        payload: dict[str, object] = {"chat_id": self.chat, "parse_mode": "HTML",
                                      "link_preview_options": {"is_disabled": not self.link_preview}}
        if self.topic is not None:
            payload["message_thread_id"] = self.topic
        payload.update(fields)
        return payload

    async def _post(self, method: str, payload: Mapping[str, object]) -> _Answer:
        import httpx  # imported by __init__ already: a dictionary lookup

        url = f"{self._base}/bot{self.target.token}/{method}"
        try:
            response = await self._client.post(url, json=payload)
        except httpx.TimeoutException:
            return _Answer(False, 0, transport=SendResult.failed(FailureReason.TIMEOUT, "Telegram: no answer in time"))
        except httpx.TransportError as exc:
            # The exception's text can hold the URL, and the URL holds the token: name the kind only.
            what = "connection refused" if isinstance(exc, httpx.ConnectError) else type(exc).__name__
            return _Answer(False, 0, transport=SendResult.failed(FailureReason.SERVER_ERROR, f"Telegram: {what}"))
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            header = response.headers.get("Retry-After", "")
            return _Answer(False, response.status_code, error_code=response.status_code,
                           description=f"HTTP {response.status_code} without a Bot API answer",
                           retry_after=float(header) if header.isdigit() else None)
        if body.get("ok") is True:
            result = body.get("result")
            message_id = result.get("message_id") if isinstance(result, dict) else None
            return _Answer(True, response.status_code,
                           message_id=message_id if isinstance(message_id, int) else None)
        parameters = body.get("parameters") if isinstance(body.get("parameters"), dict) else {}
        assert isinstance(parameters, dict)
        error_code = body.get("error_code")
        migrate = parameters.get("migrate_to_chat_id")
        return _Answer(False, response.status_code,
                       error_code=error_code if isinstance(error_code, int) else response.status_code,
                       description=str(body.get("description") or "")[:300],
                       retry_after=_float(parameters.get("retry_after")),
                       migrate_to=str(migrate) if isinstance(migrate, int) else None)

    def _failure(self, answer: _Answer, moved: str | None) -> SendResult:
        if answer.transport is not None:
            return answer.transport
        reason = classify(answer.status, answer.error_code, answer.description)
        detail = f"Telegram {answer.error_code or answer.status}: {answer.description or 'no description'}"
        return SendResult.failed(reason, self._scrub(detail), retry_after=answer.retry_after, moved_to=moved)

    def _scrub(self, text: str) -> str:
        """Telegram's words with our token masked: a description may quote it, whole or its secret half."""
        return redact(text, [self.target.token, self.target.token.partition(":")[2]])
