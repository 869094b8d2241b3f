"""Parse stage: raw feed bytes -> clean ``Item``s, or a ``ParseError`` that says why not.

feedparser does the RSS/Atom work, but several of its behaviours are unsafe for
an alert daemon (see shared/design/reliability-findings.md, section A):

* it must only ever get ``io.BytesIO(raw)`` plus the response headers: a str
  gives mojibake, a path-like body makes it open local files;
* its loose parser expands declared entities without limit, and it decodes
  some Arabic feeds wrongly: ``monitor.feeds.encodings`` decides the decoding
  and refuses entity declarations before feedparser sees the body;
* titles come back with unsanitized markup and links may be ``javascript:``,
  so every text field is reduced to plain text and only http(s) links survive.

Item identity (``Item.key``): ``guid:<id>``, else ``link:<clean link>``
(tracking parameters dropped), else ``hash:<sha1 of normalized title + date>``.

``parse_feed`` is synchronous and CPU-bound; the caller runs it in a worker.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import xml.sax
from collections.abc import Mapping
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

import feedparser

from monitor.errors import ParseError
from monitor.feeds.encodings import check_entities, check_mojibake, prepare_bytes
from monitor.feeds.itemcap import MAX_UNREADABLE_ENTRIES, Unreadable, newest_entries, newest_first
from monitor.feeds.links import clean_link, http_link
from monitor.text.normalize import normalize
from monitor.types import Item, ParsedFeed

log = logging.getLogger(__name__)

MAX_SUMMARY_CHARS = 20_000
MAX_TITLE_CHARS = 2_000
MAX_KEY_CHARS = 512

_HTML_START = re.compile(rb"^\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head|body)\b", re.I | re.S)

# --------------------------------------------------------------------------- text

class _TextExtractor(HTMLParser):
    """HTML fragment -> plain text; drops script/style, marks block breaks with ``_BREAK``."""

    _SKIP = {"script", "style", "noscript", "template", "iframe", "object"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in ("br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote"):
            self.parts.append(_BREAK)

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP and self._skipping:
            self._skipping -= 1
        elif tag in ("p", "div", "li", "tr", "td", "h1", "h2", "h3", "h4", "h5", "h6"):
            self.parts.append(_BREAK)

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


#: Where the HTML had a block break (a private-use character no feed text keeps: the
#: raw newlines of HTML are only spaces, so they cannot mark breaks).
_BREAK = "\ue000"

# C0 controls except tab/LF/CR, DEL and the BOM. A regex, not str.translate: translate
# with a dict walks non-ASCII (Arabic) text char by char in Python-object land (~10x slower).
_INVISIBLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufeff]")


def html_to_text(value: str | None, limit: int = MAX_SUMMARY_CHARS, *, lines: bool = False) -> str:
    """Plain text from a possibly-HTML, possibly-escaped field; whitespace folded.

    With ``lines``, paragraph and line breaks survive as single ``\\n`` (block tags in
    HTML, newlines in plain text; raw newlines inside HTML are spaces, as a browser shows
    them): story dedup recognises a site's furniture as the lines its items repeat.
    """
    if not value:
        return ""
    value = value[: limit * 4]
    html = "<" in value
    if html or "&" in value:
        extractor = _TextExtractor()
        try:
            extractor.feed(value)
            extractor.close()
            value = "".join(extractor.parts)
        except Exception:  # noqa: BLE001 - HTMLParser is lenient; this is belt and braces
            value = re.sub(r"<[^>]*>", _BREAK, value)
    if _INVISIBLE.search(value):
        value = _INVISIBLE.sub("", value)
    if not lines:
        return " ".join(value.replace(_BREAK, " ").split())[:limit]
    if html:
        value = " ".join(value.split())  # a newline inside HTML is a space
    text = "\n".join(folded for line in re.split(f"[\n\r{_BREAK}]", value) if (folded := " ".join(line.split())))
    return text[:limit].rstrip()


# --------------------------------------------------------------------------- item keys

def _hash_key(title: str, published: datetime | None) -> str:
    stamp = published.isoformat() if published else ""
    digest = hashlib.sha1(f"{normalize(title)}\n{stamp}".encode()).hexdigest()
    return f"hash:{digest}"


def _item_key(guid: str | None, link: str | None, title: str, published: datetime | None) -> str:
    if guid:
        if len(guid) > MAX_KEY_CHARS:
            return "guid:sha1:" + hashlib.sha1(guid.encode("utf-8")).hexdigest()
        return f"guid:{guid}"
    if link:
        canon = clean_link(link)
        if len(canon) > MAX_KEY_CHARS:
            return "link:sha1:" + hashlib.sha1(canon.encode("utf-8")).hexdigest()
        return f"link:{canon}"
    return _hash_key(title, published)


def _published(entry: Mapping[str, Any]) -> datetime | None:
    for name in ("published_parsed", "updated_parsed", "created_parsed"):
        value = entry.get(name)
        if value:
            try:
                year, month, day, hour, minute, second = value[:6]
                return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
            except (TypeError, ValueError, OverflowError):
                continue
    return None


# --------------------------------------------------------------------------- main entry

def parse_feed(body: bytes, headers: Mapping[str, str], *, url: str, feed_name: str,
               encoding: str | None = None, max_items: int = 500) -> ParsedFeed:
    """Parse one fetched feed body into clean items; raise ``ParseError`` if it is not a usable feed."""
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise TypeError("parse_feed takes the raw body as bytes, never a str or path")
    body = bytes(body)
    if not body.strip(b" \t\r\n\x00\xef\xbb\xbf\xfe\xff"):
        raise ParseError(url, "not_feed", "empty body")
    warnings: list[str] = []
    data, fp_headers, forced = prepare_bytes(body, headers or {}, encoding, warnings, url)
    check_entities(data, url)
    if _HTML_START.match(data[:4096]) and b"<rss" not in data[:4096] and b"<feed" not in data[:4096]:
        raise ParseError(url, "not_feed", "the server sent an HTML page, not a feed")
    data, entries_seen, skipped = _capped(data, max_items, url)

    try:
        # Sanitizing and URI resolution cost half the parse time and we reduce
        # every field to plain text anyway.
        result = feedparser.parse(io.BytesIO(data), response_headers=fp_headers,
                                  sanitize_html=False, resolve_relative_uris=False)
    except Exception as exc:  # noqa: BLE001 - feedparser should not raise; a bad feed must never crash a poll
        raise ParseError(url, "malformed", f"feedparser failed: {type(exc).__name__}: {exc}") from None

    version = result.get("version") or ""
    entries = result.get("entries") or []
    feed_meta = result.get("feed") or {}
    if result.get("bozo"):
        problem = result.get("bozo_exception")
        if not version and not entries:
            if b"<html" in data[:4096].lower():
                raise ParseError(url, "not_feed", "the server sent an HTML page, not a feed")
            raise ParseError(url, "not_feed" if not feed_meta else "malformed",
                             f"not a readable feed: {type(problem).__name__ if problem else 'bozo'}: {problem}")
        if not entries and isinstance(problem, xml.sax.SAXException):
            # A feed cut short (lying Content-Length, dropped connection) must
            # fail this poll rather than look like a feed with no news.
            raise ParseError(url, "malformed",
                             f"no items readable: {type(problem).__name__ if problem else 'bozo'}: {problem}")
        warnings.append(f"{type(problem).__name__ if problem else 'bozo'}: {problem}")
    elif not version and not entries:
        raise ParseError(url, "not_feed", "no RSS/Atom feed found in the body")

    base = result.get("href") or url
    feed_title = html_to_text(feed_meta.get("title"), MAX_TITLE_CHARS) or None
    items: list[Item] = []
    if len(entries) > max_items:  # a document expat could not read: capped after feedparser
        entries_seen, skipped = len(entries), len(entries) - max_items
        keep = newest_first([_published(e) for e in entries], max_items)
        entries = [entries[i] for i in keep]
    if skipped:
        warnings.append(f"{entries_seen} entries, more than the {max_items} read per poll: "
                        f"the {skipped} oldest skipped")
    for entry in entries:
        item = _item(entry, feed_name, base)
        if item is not None:
            items.append(item)

    check_mojibake(url, feed_title, items, warnings)

    ttl = None
    raw_ttl = feed_meta.get("ttl")
    if raw_ttl is not None:
        try:
            minutes = int(str(raw_ttl).strip())
            if 0 < minutes <= 7 * 24 * 60:
                ttl = minutes * 60
        except ValueError:
            warnings.append(f"ignored invalid <ttl> {str(raw_ttl)[:20]!r}")
    return ParsedFeed(url=url, title=feed_title, items=items, ttl_seconds=ttl, warnings=warnings,
                      encoding=forced or result.get("encoding") or None, skipped=skipped)


def _capped(data: bytes, max_items: int, url: str) -> tuple[bytes, int, int]:
    """(document, entries it had, entries skipped): at most ``max_items`` entries, the newest,
    reach feedparser (``monitor.feeds.itemcap``)."""
    try:
        selection = newest_entries(data, max_items)
    except Unreadable as exc:
        count = exc.entries
        if count > MAX_UNREADABLE_ENTRIES:
            raise ParseError(url, "too_many_items", f"about {count} entries in a feed that is not well-formed "
                             f"XML ({exc}); more than {MAX_UNREADABLE_ENTRIES} cannot be read safely") from None
        return data, 0, 0
    if selection is None:
        return data, 0, 0
    return selection.document, selection.total, selection.skipped


def _item(entry: Mapping[str, Any], feed_name: str, base: str) -> Item | None:
    title = html_to_text(entry.get("title"), MAX_TITLE_CHARS)
    summary_html = entry.get("summary")
    if not summary_html:
        content = entry.get("content") or []
        if content and isinstance(content[0], Mapping):
            summary_html = content[0].get("value")
    summary = html_to_text(summary_html, lines=True)
    link = http_link(entry.get("link"), base)
    if link is None:
        for candidate in entry.get("links") or []:
            if isinstance(candidate, Mapping) and candidate.get("rel", "alternate") == "alternate":
                link = http_link(candidate.get("href"), base)
                if link:
                    break
    guid_raw = entry.get("id") or entry.get("guid")
    guid = " ".join(str(guid_raw).split()) if guid_raw else None
    published = _published(entry)
    if not title and not summary and not link:
        return None
    if not title:
        title = summary[:200] if summary else (link or "")
    author = html_to_text(entry.get("author"), 200) or None
    return Item(feed=feed_name, key=_item_key(guid, link, title, published), title=title,
                summary=summary if summary != title else "", link=link and clean_link(link),
                guid=guid, published=published, author=author)


