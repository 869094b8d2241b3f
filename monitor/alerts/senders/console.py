"""The terminal: the demo and ``monitor run --once`` print alerts here.

Handled here rather than registered with Apprise's notify decorator: that
registers a process-global scheme whose handler could not reach the stream a
test or the demo passes in.
"""

from __future__ import annotations

from typing import ClassVar, TextIO

from monitor.alerts.senders import MessageStyle, OutgoingMessage, SendResult

__all__ = ["ConsoleSender"]


class ConsoleSender:
    """Writes each message's text to a stream."""

    style: ClassVar[MessageStyle] = MessageStyle.CONSOLE
    threads: ClassVar[bool] = False
    edits: ClassVar[bool] = False

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    async def aclose(self) -> None:
        return None

    async def send(self, message: OutgoingMessage) -> SendResult:
        self.stream.write(message.text.rstrip("\n") + "\n")
        self.stream.flush()
        return SendResult.ok()
