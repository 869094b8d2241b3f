"""Why a channel did not take a message: the reason every sender reports and every give-up rule is keyed by.

Its own module because both sides read it: the senders (``monitor.alerts.senders``)
say it, the channel settings (``monitor.alerts.settings``) configure what to do about it.
"""

from __future__ import annotations

import enum

__all__ = ["FailureReason", "MESSAGE_FAULTS"]


class FailureReason(enum.StrEnum):
    """Why a channel did not take a message; each has its own give-up rule."""

    RATE_LIMITED = "rate_limited"   # 429: wait retry_after, keep order
    SERVER_ERROR = "server_error"   # 5xx, SMTP 4xx, connection refused or reset: the server is not taking mail
    TIMEOUT = "timeout"             # no answer in time
    AUTH = "auth"                   # credentials or destination refused (401/403, chat not found, SMTP 535, RCPT 5xx)
    BAD_REQUEST = "bad_request"     # this message was refused (400 can't parse entities, SMTP 5xx on DATA)
    TOO_LARGE = "too_large"         # this message is too big (413, "message is too long", SMTP 552)
    UNKNOWN = "unknown"             # the channel said no without saying why (Apprise)


#: Reasons that are the message's own fault by nature: they never say anything about the channel.
MESSAGE_FAULTS = frozenset({FailureReason.BAD_REQUEST, FailureReason.TOO_LARGE})
