"""Settings of the feed stages: each feed, polling defaults, and the ``fetch:`` section.

Plain models with no network code, so ``monitor check`` loads them without
httpx or httpcore.
"""

from __future__ import annotations

import codecs
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from monitor import __version__
from monitor.feeds.schedule import MAX_RETRY_AFTER
from monitor.types import Duration

__all__ = ["FeedSettings", "PollDefaults", "FetchSettings", "FirstPoll", "DEFAULT_USER_AGENT"]

DEFAULT_USER_AGENT = f"arabic-news-monitor/{__version__} (+https://github.com/; feed alert daemon)"


#: What a feed's first poll alerts for (see ``PollDefaults.first_poll``).
FirstPoll = Literal["recent", "all", "none"]


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeedSettings(_Settings):
    """One feed to poll."""

    name: str = Field(description="Short unique name, used in logs, alerts and `monitor feeds`.")
    url: str = Field(description="http(s) URL of the RSS or Atom feed.")
    interval: Duration | None = Field(None, gt=0, description="Base polling interval, and the longest the adaptive "
                                      "interval waits unless defaults.max_interval is set higher (default: "
                                      "defaults.interval).")
    encoding: str | None = Field(None, description="Force this character encoding (e.g. windows-1256) for a feed "
                                                   "that declares a wrong one.")
    full_text: bool = Field(False, description="Fetch each new item's page and match its article text too "
                                               "(for feeds that carry only headlines).")
    first_poll: FirstPoll | None = Field(None, description="What the feed's first poll alerts for (default: "
                                         "defaults.first_poll).")
    enabled: bool = True

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be empty")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        value = value.strip()
        if not re.match(r"^https?://[^/\s]+", value, re.IGNORECASE):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return codecs.lookup(value).name
        except LookupError:
            raise ValueError(f"unknown character encoding {value!r}") from None


class PollDefaults(_Settings):
    """Polling defaults that apply to every feed unless the feed overrides them."""

    interval: Duration = Field(600.0, gt=0, description="Base polling interval; adaptive polling waits at most "
                               "this long unless max_interval is set explicitly.")
    min_interval: Duration = Field(60.0, gt=0, description="Adaptive polling never polls more often than this.")
    max_interval: Duration = Field(6 * 3600.0, gt=0, description="Errors back off up to this; when set "
                                   "explicitly (at least every feed's interval), adaptive polling of a quiet "
                                   "feed may also wait up to this long.")
    jitter: float = Field(0.1, ge=0, le=0.5, description="Random spread of each delay, as a fraction.")
    concurrency: int = Field(32, ge=1, le=512, description="Feeds polled at the same time (each host also has "
                             "fetch.per_host).")
    max_item_age: Duration | None = Field(None, description="Items published longer ago than this never alert.")
    first_poll: FirstPoll = Field("recent", description="What a feed's first poll (a new install, a feed added "
                                  "later, an OPML import) alerts for: `recent` only items published within "
                                  "first_poll_window (and undated ones), `all` its whole backlog, `none` nothing "
                                  "(every item is marked seen). Later polls alert for every new item.")
    first_poll_window: Duration = Field(86400.0, gt=0, description="With first_poll: recent, how recent an item "
                                        "must be to alert on a feed's first poll.")


class FetchSettings(_Settings):
    """The config file's ``fetch:`` section."""

    timeout: float = Field(30.0, gt=0, description="Total seconds one fetch may take, redirects and slow "
                           "bodies included (a per-read timeout does not stop a slow drip).")
    connect_timeout: float = Field(10.0, gt=0, description="Seconds to establish a TCP/TLS connection.")
    read_timeout: float = Field(20.0, gt=0, description="Seconds to wait for any single read.")
    max_bytes: int = Field(10 * 1024 * 1024, ge=1024, description="Cap on the decoded (inflated) body, "
                           "in bytes; a larger feed is a 'too_large' error, not a partial parse.")
    max_redirects: int = Field(5, ge=0, le=20, description="Redirect hops followed before a 'redirect' error.")
    per_host: int = Field(4, ge=1, description="Concurrent requests to one host.")
    max_connections: int = Field(64, ge=1, description="Requests (so connections) open at once, all hosts "
                                 "together.")
    max_keepalive: int = Field(64, ge=0, description="Idle keep-alive connections kept, all hosts together "
                               "(at most max_connections; fewer means reconnecting within one polling cycle).")
    user_agent: str = Field(DEFAULT_USER_AGENT, min_length=1, description="User-Agent header sent to feeds.")
    max_retry_after: float = Field(MAX_RETRY_AFTER, gt=0, description="Clamp for a server's Retry-After, seconds.")
    allow_private_addresses: bool = Field(False, description="Allow feeds, redirects and article pages that "
                                          "resolve to loopback, private or link-local addresses. Off by default: "
                                          "a feed's item must not make the monitor fetch (and deliver the text "
                                          "of) a page of its own network. Turn on for feeds served on your LAN.")
