"""Logging for a daemon that runs for months under journald: one line per
event, and no secret ever written, not even by a third-party library.

Why each piece:

* **One line per event.** A message or traceback with newlines would become
  several journal entries (or several lines in a pipe); newlines are escaped
  as ``\\n`` so one event stays one grep-able line.
* **journald-friendly.** Under systemd (``JOURNAL_STREAM`` names our stderr)
  the journal adds its own timestamps, so none are printed, and each line
  starts with a syslog priority (``<3>`` error, ``<4>`` warning, ...) that
  journald turns into the entry's PRIORITY (sd-daemon(3)), so
  ``journalctl -p warning`` works.
* **Redaction on the handlers, not the loggers.** apprise logs
  ``Telegram POST URL: .../bot<TOKEN>/sendMessage`` at DEBUG
  (reliability-findings C.24); urllib3/httpx log URLs too. A filter attached
  to a *logger* does not see records propagated from child loggers; one
  attached to the root *handlers* sees every record that will be written.
  It removes the configured secrets (and their URL-encoded forms) and generic
  shapes: Telegram bot tokens, ``scheme://user:password@``, ``?pass=...``.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterable
from typing import TextIO

from monitor import secrets as secrets_module
from monitor.secrets import MASK, no_secrets, redact

__all__ = ["setup_logging", "redact", "RedactionFilter", "OneLineFormatter", "under_journald", "MASK"]

_SYSLOG_PRIORITY = [  # (minimum level, syslog priority)
    (logging.CRITICAL, 2),
    (logging.ERROR, 3),
    (logging.WARNING, 4),
    (logging.INFO, 6),
]


class RedactionFilter(logging.Filter):
    """Rewrites each record so its message, arguments and traceback are redacted.

    The rendered message replaces ``msg`` and ``args`` is cleared, so any
    handler or formatter later in the chain only ever sees the clean text.
    Always returns True: redaction never drops an event.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception as exc:  # noqa: BLE001 - bad %-args from some library
            message = f"{record.msg!r} (unformattable log arguments: {type(exc).__name__})"
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class OneLineFormatter(logging.Formatter):
    """Formats a record as exactly one line; journald style or plain.

    The final text is redacted once more, so nothing a format string pulls in
    (``%(name)s``, extra fields) escapes the mask.
    """

    def __init__(self, journald: bool) -> None:
        fmt = "%(name)s: %(message)s" if journald else "%(asctime)s %(levelname)s %(name)s: %(message)s"
        super().__init__(fmt)
        self.journald = journald

    def format(self, record: logging.LogRecord) -> str:
        text = redact(super().format(record))
        text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")
        if self.journald:
            return f"<{_priority(record.levelno)}>{text}"
        return text


def _priority(levelno: int) -> int:
    for minimum, prio in _SYSLOG_PRIORITY:
        if levelno >= minimum:
            return prio
    return 7  # debug


def under_journald(stream: TextIO | None = None) -> bool:
    """True when ``stream`` (stderr) is connected to the journal.

    systemd sets ``JOURNAL_STREAM=dev:inode`` for the service's stdout/stderr;
    comparing it with the stream's own device and inode (as systemd.exec(5)
    advises) avoids a false positive when a child inherits the variable but
    its stderr was redirected.
    """
    value = os.environ.get("JOURNAL_STREAM", "")
    if not value:
        return False
    stream = sys.stderr if stream is None else stream
    try:
        dev, ino = (int(part) for part in value.split(":", 1))
        st = os.fstat(stream.fileno())
    except (ValueError, OSError, AttributeError, TypeError):
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


# Libraries that log every request at INFO; at INFO the daemon's own per-poll
# lines say the same thing once.
CHATTY_LOGGERS = ("httpx", "httpcore", "urllib3", "apscheduler.executors", "apscheduler.scheduler", "apprise")


def setup_logging(
    level: str = "INFO",
    *,
    journald: bool | None = None,
    secrets: Callable[[], Iterable[str]] = no_secrets,
    stream: TextIO | None = None,
) -> logging.Handler:
    """Configure the root logger: one handler, one line per event, redacted.

    Safe to call again (on reload): the handler installed by a previous call is
    replaced, never duplicated. Handlers installed by someone else (pytest's
    capture, for one) are kept, and get the redaction filter too.

    ``journald=None`` detects it (:func:`under_journald`). ``secrets`` is
    called for each record, so it can return the current config's values
    after a reload; it should be cheap. ``stream`` defaults to stderr.
    Returns the installed handler.
    """
    secrets_module.use_source(secrets)
    numeric = logging.getLevelName(str(level).upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    stream = sys.stderr if stream is None else stream
    if journald is None:
        journald = under_journald(stream)

    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_monitor_handler", False)]:
        root.removeHandler(old)
        old.close()  # a StreamHandler's close() leaves the stream itself open
    handler = logging.StreamHandler(stream)
    handler._monitor_handler = True  # type: ignore[attr-defined]
    handler.setFormatter(OneLineFormatter(journald))
    root.addHandler(handler)
    for h in root.handlers:
        if not any(isinstance(f, RedactionFilter) for f in h.filters):
            h.addFilter(RedactionFilter())
    root.setLevel(numeric)
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if numeric <= logging.DEBUG else logging.WARNING)
    logging.captureWarnings(True)
    return handler
