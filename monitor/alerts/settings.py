"""Settings of the alert stages: the ``channels:`` and ``routing:`` sections of the config.

Kept apart from the stages so that ``monitor check`` validates a config
without starting a sender: Telegram and email URLs are checked by the native
senders' own parsers, other URLs by Apprise (imported only for them).

Give-up rules (``give_up``): every failure reason has an attempt limit and a
deadline. A message goes ``dead`` when it has failed ``attempts`` times or
has been failing for ``deadline`` seconds, *and* the failure is its own: the
reason says so by nature (bad_request, too_large), or the channel delivered
other messages since this one first failed. While a channel delivers nothing
at all (down, refusing every message), no message dies of it: the channel
keeps order and backs off.
"""

from __future__ import annotations

import re
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from monitor.alerts.reasons import FailureReason
from monitor.types import Duration, Severity

__all__ = ["ChannelSettings", "RoutingSettings", "GiveUpRule", "DEFAULT_GIVE_UP", "Updates"]

_QUIET = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")

#: How a later copy or a new rule on a story that was already sent reaches a channel.
Updates = Literal["reply", "edit", "new"]


class GiveUpRule(BaseModel):
    """When a message failing for one reason goes dead: after ``attempts`` failures or ``deadline`` seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    attempts: int = Field(ge=1, description="Failed attempts after which the message goes dead.")
    deadline: Duration = Field(description="Seconds after its first failure after which the message goes dead.")


#: Defaults: generous for what a channel suffers as a whole, short for what is the message's own fault.
DEFAULT_GIVE_UP: dict[FailureReason, GiveUpRule] = {
    FailureReason.RATE_LIMITED: GiveUpRule(attempts=30, deadline=86400.0),
    FailureReason.SERVER_ERROR: GiveUpRule(attempts=12, deadline=6 * 3600.0),
    FailureReason.TIMEOUT: GiveUpRule(attempts=12, deadline=6 * 3600.0),
    FailureReason.AUTH: GiveUpRule(attempts=5, deadline=86400.0),
    FailureReason.BAD_REQUEST: GiveUpRule(attempts=3, deadline=3600.0),
    FailureReason.TOO_LARGE: GiveUpRule(attempts=1, deadline=0.0),
    FailureReason.UNKNOWN: GiveUpRule(attempts=12, deadline=6 * 3600.0),
}


class ChannelSettings(BaseModel):
    """One destination (``channels.<name>`` in the config)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(description=(
        "tgram://TOKEN/CHAT[:TOPIC] (native Telegram), mailto:// or mailtos:// (native SMTP), "
        "console:// for the terminal, or any other Apprise URL."))
    min_severity: Severity = Field(
        Severity.INFO, description="Alerts below this severity are not sent to this channel.")
    min_interval: float | None = Field(
        None, ge=0, description="Seconds between two messages; default 1.0 for Telegram (1 msg/s per chat), else 0.")
    per_minute: int | None = Field(
        None, ge=1, description="At most this many messages per minute; default 20 for Telegram (group limit).")
    give_up: dict[FailureReason, GiveUpRule] = Field(default_factory=dict, description=(
        "Per failure reason (rate_limited, server_error, timeout, auth, bad_request, too_large, unknown): "
        "{attempts, deadline} after which a failing message goes 'dead'; unset reasons keep the defaults."))
    updates: Updates = Field("reply", description=(
        "How a later copy or a new rule on a story already sent reaches this channel: 'reply' (Telegram: a reply "
        "to the story's first message; email: the same thread), 'edit' (Telegram: the first message is edited "
        "to show every rule and source; email: the same thread), 'new' (a message of its own)."))
    topic: int | None = Field(None, ge=1, description="Telegram forum topic (message_thread_id) to post in.")
    link_preview: bool | None = Field(None, description="Telegram: show a preview of the article's link "
                                                        "(default: no, or ?preview=yes in the URL).")
    backoff_initial: float = Field(5.0, gt=0, description="Seconds before the first retry; doubles each attempt.")
    backoff_max: float = Field(900.0, gt=0, description="Upper bound of the retry delay (jitter is added below it).")
    quiet_hours: str | None = Field(
        None, description="'HH:MM-HH:MM' in `timezone` during which alerts wait (may cross midnight).")
    timezone: str = Field("UTC", description="IANA time zone for quiet hours, digests and times in messages.")
    quiet_bypass_severity: Severity | None = Field(
        Severity.CRITICAL,
        description="Alerts at or above this severity are sent even in quiet hours (null: none are).")
    digest_minutes: float | None = Field(
        None, gt=0, description="If set, alerts are collected and sent as one digest message per period.")
    max_group: int = Field(20, ge=1, description="Most alerts folded into one grouped or digest message.")

    @model_validator(mode="before")
    @classmethod
    def _replaced_fields(cls, data: Any) -> Any:
        if isinstance(data, dict) and "max_attempts" in data:
            raise ValueError("max_attempts was replaced by give_up, per failure reason, e.g. "
                             "give_up: {bad_request: {attempts: 5, deadline: 1h}}")
        return data

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        url = url.strip()
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        if not scheme:
            raise ValueError("must be a channel URL like tgram://TOKEN/CHAT_ID, mailto://... or console://")
        query = {k.lower(): v for k, v in parse_qs(urlsplit(url).query).items()}
        if any(v.strip().lower() in {"yes", "true", "1", "on"} for v in query.get("optional", [])):
            raise ValueError("optional=yes makes failures look like success; remove it (the daemon retries)")
        if scheme in _TELEGRAM:
            from monitor.alerts.senders.telegram import parse_tgram

            parse_tgram(url)
        elif scheme in _EMAIL:
            from monitor.alerts.senders.email import parse_mailto

            parse_mailto(url)
        elif scheme != "console" and _apprise_plugin(url) is None:
            raise ValueError("Apprise does not understand this URL (unknown scheme or missing parts)")
        return url

    @field_validator("timezone")
    @classmethod
    def _check_tz(cls, tz: str) -> str:
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {tz!r}") from exc
        return tz

    @field_validator("quiet_hours")
    @classmethod
    def _check_quiet(cls, value: str | None) -> str | None:
        if value is not None and not _QUIET.match(value.replace(" ", "")):
            raise ValueError("quiet_hours must look like '22:00-07:00'")
        return value.replace(" ", "") if value else value

    @model_validator(mode="after")
    def _check_backoff(self) -> ChannelSettings:
        if self.backoff_max < self.backoff_initial:
            raise ValueError("backoff_max must be >= backoff_initial")
        if not self.is_telegram and (self.topic is not None or self.link_preview is not None):
            raise ValueError("topic and link_preview apply to Telegram channels only")
        return self

    def rule(self, reason: FailureReason) -> GiveUpRule:
        """The give-up rule for ``reason``: the channel's own, else the default."""
        return self.give_up.get(reason) or DEFAULT_GIVE_UP[reason]

    @property
    def scheme(self) -> str:
        return self.url.split("://", 1)[0].lower()

    @property
    def is_telegram(self) -> bool:
        return self.scheme in _TELEGRAM

    @property
    def is_email(self) -> bool:
        return self.scheme in _EMAIL

    def limits(self) -> tuple[float, int | None]:
        """(seconds between messages, messages per minute) with Telegram's defaults."""
        if self.is_telegram:
            return (1.0 if self.min_interval is None else self.min_interval,
                    20 if self.per_minute is None else self.per_minute)
        return (self.min_interval or 0.0, self.per_minute)

    def private_url(self) -> str:
        """The URL with secrets hidden, for logs and the CLI (Apprise's privacy rendering for its services)."""
        if self.scheme == "console":
            return self.url
        if self.is_telegram:
            from monitor.alerts.senders.telegram import parse_tgram

            tg = parse_tgram(self.url)
            return f"tgram://****/{tg.chat}" + (f":{tg.topic}" if tg.topic else "")
        if self.is_email:
            from monitor.alerts.senders.email import parse_mailto

            mail = parse_mailto(self.url)
            login = f"{mail.user}:****@" if mail.user and mail.password else (f"{mail.user}@" if mail.user else "")
            return f"{self.scheme}://{login}{mail.host}:{mail.port}?to={','.join(mail.to)}"
        plugin = _apprise_plugin(self.url)
        return str(plugin.url(privacy=True)) if plugin is not None else f"{self.scheme}://…"


_TELEGRAM = frozenset({"tgram", "telegram"})
_EMAIL = frozenset({"mailto", "mailtos"})


def _apprise_plugin(url: str) -> Any:
    """Apprise's plugin for ``url`` (None: Apprise does not understand it); imports Apprise on first use."""
    import apprise

    return apprise.Apprise.instantiate(url)


class RoutingSettings(BaseModel):
    """Grouping defaults for every rule and channel (the ``routing:`` config section)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    group_wait: float = Field(0.0, ge=0, description=(
        "Seconds the first alert of a rule waits on a channel to collect others into one message "
        "(0: send at once, as `monitor run --once` expects)."))
    group_interval: float = Field(0.0, ge=0, description=(
        "After a message for a rule, further alerts of that rule on the channel wait this long and are sent "
        "together. A rule's own `cooldown` overrides it."))
    followup_after: float | None = Field(None, ge=0, description=(
        "If set, a story that other outlets report after its alert gets one follow-up message "
        "('reported by N more outlets') per channel, no sooner than this many seconds after the alert."))
