"""Every other service (ntfy, Slack, Matrix, Discord, ...) through Apprise's public API.

Apprise tells us only what ``notify`` returns: an ``AppriseResult`` whose
status is SUCCESS, FAILURE, TIMEOUT or NOMATCH. So a failure here is
``timeout`` when Apprise says so and ``unknown`` otherwise; the deliverer's
give-up rules for ``unknown`` decide the rest. Nothing reads Apprise's log and
nothing of Apprise is patched. Apprise's own retries stay off (its default):
the deliverer owns retries and backoff.
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

import apprise

from monitor.alerts.senders import FailureReason, MessageStyle, OutgoingMessage, SendResult

__all__ = ["AppriseSender"]


class AppriseSender:
    """One Apprise URL; messages go as a title and plain text."""

    style: ClassVar[MessageStyle] = MessageStyle.TEXT
    threads: ClassVar[bool] = False
    edits: ClassVar[bool] = False

    def __init__(self, url: str, *, timeout: float = 60.0) -> None:
        self._url = url
        self._timeout = timeout

    async def aclose(self) -> None:
        return None

    async def send(self, message: OutgoingMessage) -> SendResult:
        return await asyncio.to_thread(self._notify, message)

    def _notify(self, message: OutgoingMessage) -> SendResult:
        service = apprise.Apprise()
        if not service.add(self._url):
            return SendResult.failed(FailureReason.BAD_REQUEST, "Apprise cannot load this URL")
        try:
            result = service.notify(body=message.text, title=message.subject, body_format=apprise.NotifyFormat.TEXT,
                                    timeout=self._timeout)
        except Exception as exc:  # noqa: BLE001 - a plugin's bug must become a failed attempt, not a dead task
            return SendResult.failed(FailureReason.UNKNOWN, f"Apprise raised {type(exc).__name__}")
        status = result.status
        if status == apprise.AppriseResultStatus.SUCCESS:
            return SendResult.ok()
        if status == apprise.AppriseResultStatus.TIMEOUT:
            return SendResult.failed(FailureReason.TIMEOUT, "Apprise: the service did not answer in time")
        if status == apprise.AppriseResultStatus.NOMATCH:
            return SendResult.failed(FailureReason.UNKNOWN, "Apprise: no service was notified")
        return SendResult.failed(FailureReason.UNKNOWN, "Apprise: the service refused the message (no reason given)")
