"""The item cap: a feed with more entries than the cap is cut to its newest ones
*before* feedparser builds anything.

Why before: feedparser turns every entry into dicts of dicts; a 10 MB feed of
300,000 tiny items cost 436 MB in one parse, and three polled at once were
OOM-killed under the unit's ``MemoryMax=768M``. And why "newest": reading the
first N entries in document order lost every new item of a feed that lists
oldest first (a 600-item feed: 0 of its 100 newest matching items alerted).

``newest_entries`` scans the document once with expat (streaming, C), keeping
only the byte ranges and dates of the best ``limit`` entries (a bounded heap,
so memory does not grow with the entry count), and returns a document made of
the head, those entries in document order, and the tail. Dated entries rank
by date, newest first; undated ones follow in document order (feeds list
newest first when they carry no dates). A document expat cannot read is left
to feedparser's lenient parser, within ``MAX_UNREADABLE_ENTRIES``.
"""

from __future__ import annotations

import heapq
import re
import xml.parsers.expat
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime

__all__ = ["Selection", "Unreadable", "newest_entries", "rough_entry_count", "newest_first", "MAX_UNREADABLE_ENTRIES"]

#: A feed that is not well-formed XML goes to feedparser whole; above this many
#: entries that costs too much memory, so such a feed is refused instead.
MAX_UNREADABLE_ENTRIES = 5_000

_ENTRY_TAG = re.compile(rb"<(?:[\w.-]+:)?(?:item|entry)[\s>/]")
_ENTRIES = {"item", "entry"}
#: Publication dates first (what feedparser's ``published`` reads), then update dates.
_DATE_TAGS = {"pubdate": 0, "published": 0, "issued": 0, "date": 0, "created": 1, "updated": 2, "modified": 2}


class Unreadable(Exception):
    """expat cannot read the document (not well-formed): only feedparser's lenient parser can.
    ``entries`` is its ``rough_entry_count`` (already counted: the body may be megabytes)."""

    def __init__(self, message: str, entries: int) -> None:
        super().__init__(message)
        self.entries = entries


def rough_entry_count(data: bytes) -> int:
    """Entry start tags in the bytes (an upper bound: one inside CDATA counts too)."""
    return len(_ENTRY_TAG.findall(data))


@dataclass(frozen=True)
class Selection:
    """A smaller document with the kept entries, and how many the original had."""

    document: bytes
    total: int
    kept: int

    @property
    def skipped(self) -> int:
        return self.total - self.kept


@dataclass
class _Entry:
    index: int
    start: int
    end: int = -1
    date: float | None = None
    date_rank: int = 99


def _timestamp(text: str) -> float | None:
    text = text.strip()
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    try:
        return when.timestamp()
    except (OverflowError, OSError, ValueError):
        return None


class _Scanner:
    """expat callbacks that keep the ``limit`` best entries seen so far."""

    def __init__(self, data: bytes, limit: int) -> None:
        self.data = data
        self.limit = limit
        # A UTF-8 byte order mark is skipped (the override below would read it as text
        # before the XML declaration); every offset is then shifted back by its length.
        self.offset = 3 if data.startswith(b"\xef\xbb\xbf") else 0
        # ISO-8859-1 maps every byte to one character, so offsets stay byte offsets and the
        # ASCII markup of any ASCII-compatible encoding reads right (UTF-16 was made UTF-8
        # before this). A "foreign DTD" makes undeclared entities (&nbsp; in a title) no
        # error; declared ones were refused earlier (``check_entities``).
        self.parser = xml.parsers.expat.ParserCreate(encoding="iso-8859-1")
        self.parser.UseForeignDTD(True)
        self.parser.StartElementHandler = self._start
        self.parser.EndElementHandler = self._end
        self.depth = 0
        self.total = 0
        self.current: _Entry | None = None
        self.entry_depth = 0
        self.date_tag: str | None = None
        self.date_text: list[str] = []
        self.dated: list[tuple[float, int, _Entry]] = []  # min-heap of the newest: (date, -index, entry)
        self.undated: list[_Entry] = []                  # the first ``limit`` undated, in document order
        self.first_start: int | None = None
        self.last_end = 0

    def run(self) -> None:
        self.parser.Parse(self.data[self.offset:], True)

    def _at(self) -> int:
        return self.parser.CurrentByteIndex + self.offset

    def _start(self, name: str, attrs: dict[str, str]) -> None:
        self.depth += 1
        local = name.rsplit(":", 1)[-1].lower()
        if self.current is None:
            if local in _ENTRIES and self.depth <= 3:  # rss/channel/item, feed/entry, rdf:RDF/item
                self.current = _Entry(self.total, self._at())
                self.entry_depth = self.depth
                if self.first_start is None:
                    self.first_start = self.current.start
        elif self.depth == self.entry_depth + 1 and local in _DATE_TAGS:
            self.date_tag = local
            self.date_text = []
            self.parser.CharacterDataHandler = self.date_text.append

    def _end(self, name: str) -> None:
        entry = self.current
        if entry is not None:
            if self.date_tag is not None and self.depth == self.entry_depth + 1:
                rank = _DATE_TAGS[self.date_tag]
                if rank < entry.date_rank:
                    stamp = _timestamp("".join(self.date_text))
                    if stamp is not None:
                        entry.date, entry.date_rank = stamp, rank
                self.date_tag = None
                self.parser.CharacterDataHandler = None
            elif self.depth == self.entry_depth:
                entry.end = self.data.index(b">", self._at()) + 1
                self.last_end = entry.end
                self._keep(entry)
                self.total += 1
                self.current = None
        self.depth -= 1

    def _keep(self, entry: _Entry) -> None:
        if entry.date is not None:
            item = (entry.date, -entry.index, entry)
            if len(self.dated) < self.limit:
                heapq.heappush(self.dated, item)
            elif item[:2] > self.dated[0][:2]:
                heapq.heapreplace(self.dated, item)
        elif len(self.undated) < self.limit:
            self.undated.append(entry)

    def selection(self) -> Selection:
        newest = [entry for _, _, entry in sorted(self.dated, key=lambda t: t[:2], reverse=True)]
        kept = sorted((newest + self.undated)[:self.limit], key=lambda e: e.index)
        assert self.first_start is not None
        document = b"".join([self.data[:self.first_start], *(self.data[e.start:e.end] for e in kept),
                             self.data[self.last_end:]])
        return Selection(document, self.total, len(kept))


def newest_entries(data: bytes, limit: int) -> Selection | None:
    """The document cut to its ``limit`` newest entries; None when it has no more than ``limit``.

    Raises ``Unreadable`` when it may have more but expat cannot read it.
    """
    entries = rough_entry_count(data)
    if entries <= limit:
        return None
    scanner = _Scanner(data, limit)
    try:
        scanner.run()
    except (xml.parsers.expat.ExpatError, ValueError) as exc:
        raise Unreadable(str(exc), entries) from None
    if scanner.total <= limit:
        return None
    return scanner.selection()


def newest_first(dates: list[datetime | None], limit: int) -> list[int]:
    """Indexes of the ``limit`` entries to keep, in document order, by the same ranking as
    ``newest_entries`` (for entries feedparser has already parsed)."""
    dated = sorted((i for i, d in enumerate(dates) if d is not None),
                   key=lambda i: (_at(dates[i]), -i), reverse=True)
    undated = [i for i, d in enumerate(dates) if d is None]
    return sorted((dated + undated)[:limit])


def _at(when: datetime | None) -> float:
    assert when is not None
    return when.timestamp()
