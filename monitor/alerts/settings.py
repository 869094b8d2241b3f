"""Settings of the alert stages: the ``channels:`` and ``routing:`` sections of the config.

Kept apart from the stages so that ``monitor check`` validates a config
without loading the senders: Apprise is imported only to check (and to show
in privacy form) a URL of a channel that Apprise serves.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from monitor.types import Severity

__all__ = ["ChannelSettings", "RoutingSettings"]

_QUIET = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")


class ChannelSettings(BaseModel):
    """One destination (``channels.<name>`` in the config)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(description="Apprise URL (tgram://TOKEN/CHAT, mailto://..., ...) or console:// for the terminal.")
    min_severity: Severity = Field(
        Severity.INFO, description="Alerts below this severity are not sent to this channel.")
    min_interval: float | None = Field(
        None, ge=0, description="Seconds between two messages; default 1.0 for Telegram (1 msg/s per chat), else 0.")
    per_minute: int | None = Field(
        None, ge=1, description="At most this many messages per minute; default 20 for Telegram (group limit).")
    max_attempts: int = Field(
        5, ge=1, description="Attempts before a message failing permanently (HTTP 400/401/403, SMTP 5xx) goes 'dead'.")
    backoff_initial: float = Field(5.0, gt=0, description="Seconds before the first retry; doubles each attempt.")
    backoff_max: float = Field(900.0, gt=0, description="Upper bound of the retry delay (jitter is added below it).")
    quiet_hours: str | None = Field(
        None, description="'HH:MM-HH:MM' in `timezone` during which alerts wait (may cross midnight).")
    timezone: str = Field("UTC", description="IANA time zone for quiet hours, digests and times in messages.")
    quiet_bypass_severity: Severity | None = Field(
        Severity.CRITICAL, description="Alerts at or above this severity are sent even in quiet hours (null: none are).")
    digest_minutes: float | None = Field(
        None, gt=0, description="If set, alerts are collected and sent as one digest message per period.")
    max_group: int = Field(20, ge=1, description="Most alerts folded into one grouped or digest message.")

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        url = url.strip()
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        if not scheme:
            raise ValueError("must be an Apprise URL like tgram://TOKEN/CHAT_ID or mailto://... or console://")
        query = {k.lower(): v for k, v in parse_qs(urlsplit(url).query).items()}
        if any(v.strip().lower() in {"yes", "true", "1", "on"} for v in query.get("optional", [])):
            raise ValueError("optional=yes makes failures look like success; remove it (the daemon retries)")
        if scheme != "console" and _apprise_plugin(url) is None:
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
        return self

    @property
    def scheme(self) -> str:
        return self.url.split("://", 1)[0].lower()

    @property
    def is_telegram(self) -> bool:
        return self.scheme in {"tgram", "telegram"}

    @property
    def is_email(self) -> bool:
        return self.scheme in {"mailto", "mailtos", "email"}

    def limits(self) -> tuple[float, int | None]:
        """(seconds between messages, messages per minute) with Telegram's defaults."""
        if self.is_telegram:
            return (1.0 if self.min_interval is None else self.min_interval,
                    20 if self.per_minute is None else self.per_minute)
        return (self.min_interval or 0.0, self.per_minute)

    def private_url(self) -> str:
        """The URL with secrets hidden (Apprise's privacy rendering), for logs and the CLI."""
        if self.scheme == "console":
            return self.url
        plugin = _apprise_plugin(self.url)
        return str(plugin.url(privacy=True)) if plugin is not None else f"{self.scheme}://…"


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
