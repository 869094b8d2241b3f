"""The sender boundary: one message to one channel, and what became of it.

Like Alertmanager's ``Notifier``: a sender knows its channel's protocol and
nothing about the outbox. ``send`` never raises for a failed delivery; it
returns a ``SendResult`` whose ``reason`` is one ``FailureReason``, so the
deliverer (the ``Retrier``) decides with one table of give-up rules whether to
wait, retry, set the message aside or give up, whatever the channel.

    telegram.py   the Bot API over httpx: HTML, replies, edits, topics, chat migration
    email.py      EmailMessage over SMTP (smtplib in a thread): threading headers, STARTTLS/SSL
    apprise.py    every other service Apprise knows (its public result only)
    console.py    the terminal (the demo, tests)

``build_sender`` picks one from a channel's settings.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol, TextIO

from monitor.alerts.reasons import MESSAGE_FAULTS, FailureReason

if TYPE_CHECKING:
    from monitor.alerts.settings import ChannelSettings

__all__ = ["FailureReason", "MESSAGE_FAULTS", "SendResult", "OutgoingMessage", "MessageStyle", "SentAs",
           "Sender", "build_sender"]


class SentAs(enum.StrEnum):
    """How a delivered message reached the reader."""

    MESSAGE = "message"  # a new message
    REPLY = "reply"      # threaded under the story's first message (Telegram reply, email In-Reply-To)
    EDIT = "edit"        # the story's first message was edited in place (Telegram)


class MessageStyle(enum.StrEnum):
    """What the renderer must produce for a sender."""

    TELEGRAM = "telegram"  # Telegram HTML pieces of at most 4,096 UTF-16 units
    EMAIL = "email"        # subject, text part and HTML part
    TEXT = "text"          # subject and plain text (Apprise services)
    CONSOLE = "console"    # the console block


@dataclass(frozen=True)
class OutgoingMessage:
    """One request to a channel.

    ``reply_to`` is the channel's id of the message to thread under (the
    story's first message); ``edit`` the id of a message to replace instead of
    sending a new one (a sender that cannot edit, or finds the message gone,
    sends a reply). ``key`` is a stable name of this message (email
    Message-ID), the same when a crash makes it go out twice.
    """

    text: str
    html: str | None = None
    subject: str = ""
    reply_to: str | None = None
    references: tuple[str, ...] = ()
    edit: str | None = None
    key: str | None = None


@dataclass(frozen=True)
class SendResult:
    """What one ``send`` did. ``detail`` is short and holds no secret (no token, no password, no URL).

    ``moved_to``: the destination told us it moved (a Telegram group upgraded
    to a supergroup); the message was delivered there and later ones should go
    there too.
    """

    delivered: bool
    reason: FailureReason | None = None
    retry_after: float | None = None
    message_id: str | None = None
    sent_as: SentAs = SentAs.MESSAGE
    detail: str = ""
    moved_to: str | None = None

    @classmethod
    def ok(cls, message_id: str | None = None, sent_as: SentAs = SentAs.MESSAGE,
           moved_to: str | None = None) -> SendResult:
        return cls(True, message_id=message_id, sent_as=sent_as, moved_to=moved_to)

    @classmethod
    def failed(cls, reason: FailureReason, detail: str, retry_after: float | None = None,
               moved_to: str | None = None) -> SendResult:
        return cls(False, reason=reason, retry_after=retry_after, detail=detail, moved_to=moved_to)


class Sender(Protocol):
    """One channel's protocol. ``threads``: replies reach the reader under the story's first message;
    ``edits``: a sent message can be replaced."""

    style: ClassVar[MessageStyle]
    threads: ClassVar[bool]
    edits: ClassVar[bool]

    async def send(self, message: OutgoingMessage) -> SendResult: ...

    async def aclose(self) -> None: ...


def build_sender(name: str, settings: ChannelSettings, *, console: TextIO) -> Sender:
    """The sender for ``settings``' URL: native Telegram and email, the console, else Apprise."""
    from monitor.alerts.senders.apprise import AppriseSender
    from monitor.alerts.senders.console import ConsoleSender
    from monitor.alerts.senders.email import EmailSender, parse_mailto
    from monitor.alerts.senders.telegram import TelegramSender, parse_tgram

    if settings.scheme == "console":
        return ConsoleSender(console)
    if settings.is_telegram:
        return TelegramSender(parse_tgram(settings.url), topic=settings.topic, link_preview=settings.link_preview)
    if settings.is_email:
        return EmailSender(parse_mailto(settings.url))
    return AppriseSender(settings.url)
