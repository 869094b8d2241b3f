"""Values shared by several stages, and the two units every config file uses.

fetch -> ``FetchResult``; parse -> ``ParsedFeed`` of ``Item``; rules ->
``RuleMatch`` (``monitor.rules``); stories -> ``StoryAssignment``
(``monitor.stories``); the state layer's own records live in ``monitor.state``.
Frozen where a value must not change after its stage produced it.

``Severity`` and ``Duration`` are here because the config, the rules and the
routing all read them: one ordering of severities, one duration syntax.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from pydantic import BeforeValidator

__all__ = ["Severity", "Duration", "parse_duration", "FetchResult", "Item", "ParsedFeed"]


class Severity(enum.StrEnum):
    """How urgent an alert is; ordered by rank (``Severity.INFO < Severity.CRITICAL``)."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RANK[self.value]

    def __lt__(self, other: str) -> bool:
        return self.rank < Severity(other).rank

    def __le__(self, other: str) -> bool:
        return self.rank <= Severity(other).rank

    def __gt__(self, other: str) -> bool:
        return self.rank > Severity(other).rank

    def __ge__(self, other: str) -> bool:
        return self.rank >= Severity(other).rank


_RANK = {"info": 0, "warning": 1, "critical": 2}

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: Any) -> float:
    """``300``, ``"300"``, ``"500ms"``, ``"5m"``, ``"1.5h"``, ``"2d"`` -> seconds (never negative)."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 300, '5m' or '1h'")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    else:
        raise ValueError(f"expected a duration such as 300, '5m' or '1h', got {value!r}")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


#: Seconds, written in the YAML as a number or with a unit (ms, s, m, h, d).
Duration = Annotated[float, BeforeValidator(parse_duration)]


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
    # Entries beyond the item cap that were not read (the oldest): worth a WARNING.
    skipped: int = 0
