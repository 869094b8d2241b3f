"""Exceptions raised by the daemon.

Expected failures are ``MonitorError`` subclasses and become *results*: a
feed that cannot be fetched is recorded on the feed's row and polling goes on;
a config or rules file that does not validate is reported with file, line and
field. Anything else that escapes is a bug and propagates.

    MonitorError
    ├── ConfigError        one problem in a config or rules file (file:line:col)
    │   └── ConfigErrors   several of them, reported together
    ├── FetchError         HTTP layer: timeout, status, size cap, redirects
    ├── ParseError         feed body: not a feed, entity declarations, mojibake
    └── DeliveryError      a channel refused or failed a message
"""

from __future__ import annotations

from dataclasses import dataclass


class MonitorError(Exception):
    """Base class of every expected failure."""


@dataclass
class SourceLocation:
    """Where in a YAML file a value came from (1-based line and column)."""

    file: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        parts = [self.file]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)


class ConfigError(MonitorError):
    """One invalid value in a config or rules file.

    Rendered as ``file:line:col: field: message (did you mean 'x'?)`` so an
    editor can jump to it and a person can fix it without reading a traceback.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str = "<config>",
        line: int | None = None,
        column: int | None = None,
        field: str | None = None,
        suggestion: str | None = None,
    ) -> None:
        self.message = message
        self.location = SourceLocation(file, line, column)
        self.field = field
        self.suggestion = suggestion
        super().__init__(str(self))

    @property
    def file(self) -> str:
        return self.location.file

    @property
    def line(self) -> int | None:
        return self.location.line

    @property
    def column(self) -> int | None:
        return self.location.column

    def __str__(self) -> str:
        text = f"{self.location}: "
        if self.field:
            text += f"{self.field}: "
        text += self.message
        if self.suggestion:
            text += f" (did you mean {self.suggestion!r}?)"
        return text


class ConfigErrors(ConfigError):
    """Several ``ConfigError`` found in one pass, so the user fixes them all at once."""

    def __init__(self, errors: list[ConfigError]) -> None:
        if not errors:
            raise ValueError("ConfigErrors needs at least one error")
        self.errors = list(errors)
        first = self.errors[0]
        super().__init__(
            first.message,
            file=first.file,
            line=first.line,
            column=first.column,
            field=first.field,
            suggestion=first.suggestion,
        )

    def __str__(self) -> str:
        return "\n".join(ConfigError.__str__(e) for e in self.errors)


class FetchError(MonitorError):
    """A feed could not be fetched this time.

    ``kind`` is a short stable word used in logs, metrics and ``monitor feeds``
    (timeout, connect, status, too_large, encoding, redirect, protocol,
    forbidden_target). ``retry_after`` is the server's Retry-After in seconds,
    already parsed and clamped, when it sent one.
    """

    def __init__(
        self,
        url: str,
        kind: str,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.url = url
        self.kind = kind
        self.status = status
        self.retry_after = retry_after
        self.message = message
        super().__init__(f"{url}: {kind}: {message}")


class ParseError(MonitorError):
    """A fetched body is not a usable feed (``kind``: not_feed, entities, mojibake, malformed)."""

    def __init__(self, url: str, kind: str, message: str) -> None:
        self.url = url
        self.kind = kind
        self.message = message
        super().__init__(f"{url}: {kind}: {message}")


class DeliveryError(MonitorError):
    """A channel failed to take a message.

    ``retryable`` tells the outbox whether to try again (timeouts, 429, 5xx)
    or to give up after the attempt limit (401, 400, 550).
    """

    def __init__(
        self,
        channel: str,
        message: str,
        *,
        retryable: bool = True,
        retry_after: float | None = None,
    ) -> None:
        self.channel = channel
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after
        super().__init__(f"{channel}: {message}")
