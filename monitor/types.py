"""Values passed between the pipeline stages.

fetch -> ``FetchResult``; parse -> ``ParsedFeed`` of ``Item``; match ->
``Hit`` and ``RuleMatch`` (defined in ``monitor.text.matcher`` / ``monitor.rules.evaluate``);
dedup -> story id; route/deliver -> outbox rows in ``monitor.state.db``.
Frozen where a value must not change after its stage produced it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Mapping


@dataclass(frozen=True)
class FeedState:
    """What the store remembers about a feed between polls."""

    url: str
    etag: str | None = None
    last_modified: str | None = None
    # Where a permanent redirect pointed last time; polled instead of ``url``.
    redirected_url: str | None = None


@dataclass(frozen=True)
class FetchResult:
    """One HTTP response, with the body already inflated within the size cap.

    ``status`` is 200 or 304; every other outcome raises ``FetchError``.
    ``body`` is the raw (undecoded-charset) bytes, empty on 304.
    """

    url: str
    final_url: str
    status: int
    body: bytes
    headers: Mapping[str, str]
    etag: str | None = None
    last_modified: str | None = None
    permanent_redirect: str | None = None
    elapsed: float = 0.0

    @property
    def not_modified(self) -> bool:
        return self.status == 304


@dataclass(frozen=True)
class Item:
    """One feed entry as clean text, ready to match.

    ``key`` is the item's identity across polls and feeds: ``guid:...``, else
    ``link:<canonical url>``, else ``hash:<sha1 of normalized title+date>``.
    ``title`` and ``summary`` are plain text (HTML removed, entities decoded),
    in the original spelling: normalization is for matching only.
    """

    feed: str
    key: str
    title: str
    summary: str = ""
    link: str | None = None
    guid: str | None = None
    published: datetime | None = None
    author: str | None = None

    @property
    def text(self) -> str:
        """Title and summary as one document (used for hashing and dedup)."""
        return f"{self.title}\n{self.summary}" if self.summary else self.title


@dataclass
class ParsedFeed:
    """The items of one fetched feed plus what the scheduler can learn from it."""

    url: str
    title: str | None = None
    items: list[Item] = field(default_factory=list)
    # <ttl> in the feed, in seconds (adaptive polling honours it).
    ttl_seconds: int | None = None
    # Non-fatal problems worth showing in ``monitor feeds`` (bozo reasons, ...).
    warnings: list[str] = field(default_factory=list)
    encoding: str | None = None
