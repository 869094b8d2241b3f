"""Parse stage: raw feed bytes -> clean ``Item``s, or a ``ParseError`` that says why not.

feedparser does the RSS/Atom work, but several of its behaviours are unsafe for
an alert daemon (see shared/design/reliability-findings.md, section A):

* it must only ever get ``io.BytesIO(raw)`` plus the response headers: a str
  gives mojibake, a path-like body makes it open local files;
* its loose parser expands declared entities without limit (1 GB titles), so
  any ``<!ENTITY`` declaration is refused *after* decoding the document the way
  feedparser itself will (UTF-16 hides it from a byte scan);
* a UTF-8 BOM with a wrong declaration gives silent mojibake, so a BOM wins
  and we re-encode to UTF-8 ourselves (likewise for a per-feed override);
* Arabic decoded with the wrong codec must flag the feed (kind ``mojibake``),
  never produce alerts on garbage;
* titles come back with unsanitized markup and links may be ``javascript:``,
  so every text field is reduced to plain text and only http(s) links survive.

Item identity (``Item.key``): ``guid:<id>``, else ``link:<canonical link>``
(tracking parameters dropped), else ``hash:<sha1 of normalized title + date>``.

``parse_feed`` is synchronous and CPU-bound; the caller runs it in a worker
thread. ``extract_article`` turns an article page into text (trafilatura) for
feeds that carry only headlines.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import unicodedata
import xml.sax
from datetime import datetime, timezone
from html.parser import HTMLParser
from typing import Any, Mapping
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import feedparser
from feedparser.encodings import convert_to_utf8, parse_content_type

from monitor.errors import ParseError
from monitor.types import Item, ParsedFeed

log = logging.getLogger(__name__)

try:  # Written in parallel by the normalize stage; the fallback keeps keys stable meanwhile.
    from monitor.text.normalize import normalize as _normalize
except ImportError:  # pragma: no cover - depends on the other module being present
    def _normalize(text: str) -> str:
        return " ".join(unicodedata.normalize("NFKC", text).split())

MAX_SUMMARY_CHARS = 20_000
MAX_TITLE_CHARS = 2_000
MAX_KEY_CHARS = 512

_BOMS = (
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\xfe\xff", "utf-16-be"),
    (b"\xff\xfe", "utf-16-le"),
)
_XML_DECL = re.compile(rb"^\s*<\?xml[^>]*?\?>", re.S)
_XML_DECL_ENCODING = re.compile(rb"""encoding\s*=\s*["']([A-Za-z0-9._:-]+)["']""")
_ENTITY_DECL = re.compile(rb"<!\s*ENTITY", re.I)
_HTML_START = re.compile(rb"^\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head|body)\b", re.I | re.S)

# Query parameters that only track the reader. Deliberately narrow: some news
# CMSs use ``cid``/``source``/``id`` for the article itself, and collapsing two
# articles onto one key would lose an alert.
_TRACKING_PARAM = re.compile(
    r"^(?:utm_[a-z_]*|fbclid|gclid|dclid|gbraid|wbraid|msclkid|yclid|twclid|igshid|"
    r"mc_cid|mc_eid|_ga|_gl|_hsenc|_hsmi|mkt_tok|ocid|cmpid|at_medium|at_campaign|"
    r"ref_src|ref_url|rss|from_rss|feed_id|xtor)$",
    re.I,
)

_ARABIC_LETTER = re.compile(r"[\u0621-\u064a\u0671-\u06d3\ufb50-\ufdff\ufe70-\ufefc]")
_LATIN1_LETTER = re.compile(r"[\u00c0-\u00ff]")
# Only text containing one of these can be mis-decoded Arabic: Latin-1/cp1252
# code points, or UTF-8 lead bytes read as cp1256 (ط ظ ع غ) followed by a
# non-letter. Checked first so clean Arabic costs one regex scan.
_SUSPECT = re.compile(
    "[\u0080-\u00ff\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc"
    "\u201a\u201e\u2020\u2021\u2030\u2039\u203a\u2122]|[\u0637\u0638][^\u0621-\u0652\\s]"
)
# Codecs that Arabic UTF-8 bytes are typically misread as.
_MISREAD_CODECS = ("cp1252", "latin-1", "cp1256", "iso-8859-2", "cp855", "iso-8859-6")


# --------------------------------------------------------------------------- text

class _TextExtractor(HTMLParser):
    """HTML fragment -> plain text; drops script/style, keeps block breaks as spaces."""

    _SKIP = {"script", "style", "noscript", "template", "iframe", "object"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in ("br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote"):
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP and self._skipping:
            self._skipping -= 1
        elif tag in ("p", "div", "li", "tr", "td", "h1", "h2", "h3", "h4", "h5", "h6"):
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


# C0 controls except tab/LF/CR, DEL and the BOM. A regex, not str.translate: translate
# with a dict walks non-ASCII (Arabic) text char by char in Python-object land (~10x slower).
_INVISIBLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufeff]")


def html_to_text(value: str | None, limit: int = MAX_SUMMARY_CHARS) -> str:
    """Plain text from a possibly-HTML, possibly-escaped field; whitespace folded."""
    if not value:
        return ""
    value = value[: limit * 4]
    if "<" in value or "&" in value:
        extractor = _TextExtractor()
        try:
            extractor.feed(value)
            extractor.close()
            value = "".join(extractor.parts)
        except Exception:  # HTMLParser is lenient; this is belt and braces
            value = re.sub(r"<[^>]*>", " ", value)
    if _INVISIBLE.search(value):
        value = _INVISIBLE.sub("", value)
    return " ".join(value.split())[:limit]


# --------------------------------------------------------------------------- links and keys

def http_link(value: str | None, base: str | None = None) -> str | None:
    """The absolute http(s) URL, or None (javascript:, data:, mailto: ... are dropped)."""
    if not value or not isinstance(value, str):
        return None
    value = value.strip()
    if base:
        try:
            value = urljoin(base, value)
        except ValueError:
            return None
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return value


def canonical_link(url: str) -> str:
    """Stable form of an article URL: lower-case scheme/host, no default port,
    no fragment, tracking parameters removed (others kept, in order)."""
    try:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").lower().rstrip(".")
        port = parts.port
    except ValueError:
        return url.strip()
    scheme = parts.scheme.lower()
    netloc = host
    if port and not ((scheme == "http" and port == 80) or (scheme == "https" and port == 443)):
        netloc = f"{host}:{port}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        kept = [(k, v) for k, v in pairs if not _TRACKING_PARAM.match(k)]
        if len(kept) != len(pairs):
            query = urlencode(kept, doseq=True)
    return urlunsplit((scheme, netloc, parts.path or "/", query, ""))


def _hash_key(title: str, published: datetime | None) -> str:
    stamp = published.isoformat() if published else ""
    digest = hashlib.sha1(f"{_normalize(title)}\n{stamp}".encode("utf-8")).hexdigest()
    return f"hash:{digest}"


def _item_key(guid: str | None, link: str | None, title: str, published: datetime | None) -> str:
    if guid:
        if len(guid) > MAX_KEY_CHARS:
            return "guid:sha1:" + hashlib.sha1(guid.encode("utf-8")).hexdigest()
        return f"guid:{guid}"
    if link:
        canon = canonical_link(link)
        if len(canon) > MAX_KEY_CHARS:
            return "link:sha1:" + hashlib.sha1(canon.encode("utf-8")).hexdigest()
        return f"link:{canon}"
    return _hash_key(title, published)


def _published(entry: Mapping[str, Any]) -> datetime | None:
    for name in ("published_parsed", "updated_parsed", "created_parsed"):
        value = entry.get(name)
        if value:
            try:
                return datetime(*value[:6], tzinfo=timezone.utc)
            except (TypeError, ValueError, OverflowError):
                continue
    return None


# --------------------------------------------------------------------------- encodings

def _bom(body: bytes) -> str | None:
    for mark, codec in _BOMS:
        if body.startswith(mark):
            return codec
    return None


def _declared_encodings(body: bytes, headers: Mapping[str, str]) -> tuple[str, str]:
    """(HTTP charset, XML declaration encoding), lower-case, '' when absent."""
    _, http_charset = parse_content_type(headers.get("content-type") or "")
    decl = _XML_DECL.match(body[:1024])
    xml_enc = ""
    if decl:
        m = _XML_DECL_ENCODING.search(decl.group(0))
        if m:
            xml_enc = m.group(1).decode("ascii").lower()
    return (http_charset or "").lower(), xml_enc


def _as_utf8_document(text: str, headers: Mapping[str, str]) -> tuple[bytes, dict[str, str]]:
    """Re-encode decoded text as UTF-8 with a matching declaration and header."""
    raw = text.lstrip("\ufeff").encode("utf-8")
    decl = _XML_DECL.match(raw[:1024])
    if decl:
        fixed = _XML_DECL_ENCODING.sub(b'encoding="utf-8"', decl.group(0))
        raw = fixed + raw[decl.end():]
    new_headers = dict(headers)
    media, _ = parse_content_type(headers.get("content-type") or "")
    if not (media.endswith("xml") or media.endswith("+xml")):
        media = "application/xml"
    new_headers["content-type"] = f"{media}; charset=utf-8"
    return raw, new_headers


def _prepare_bytes(body: bytes, headers: Mapping[str, str], encoding: str | None,
                   warnings: list[str], url: str) -> tuple[bytes, dict[str, str], str | None]:
    """Decide the decoding ourselves where feedparser gets it wrong.

    Returns (bytes for feedparser, headers for feedparser, encoding we forced or None).
    """
    headers = {k.lower(): v for k, v in headers.items()}
    if encoding:
        try:
            text = body.decode(encoding, errors="replace")
        except LookupError:
            raise ParseError(url, "malformed", f"unknown encoding override {encoding!r}") from None
        data, headers = _as_utf8_document(text, headers)
        return data, headers, encoding.lower()
    bom = _bom(body)
    if bom:
        http_cs, xml_enc = _declared_encodings(body[len(b"\xef\xbb\xbf"):] if bom == "utf-8" else b"", headers)
        if bom != "utf-8" or (http_cs and http_cs not in ("utf-8", "utf8")) or (
                xml_enc and xml_enc not in ("utf-8", "utf8")):
            if bom == "utf-8" and (http_cs or xml_enc):
                warnings.append(f"UTF-8 byte order mark overrides declared encoding {xml_enc or http_cs}")
            text = body.decode(bom, errors="replace")
            data, headers = _as_utf8_document(text, headers)
            return data, headers, bom
        return body, headers, None
    http_cs, xml_enc = _declared_encodings(body, headers)
    declared = http_cs or xml_enc
    if declared in ("", "utf-8", "utf8") and b"\x00" not in body[:64]:
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            # feedparser would decode the whole document as iso-8859-2 (or
            # whatever chardet guesses) because of a few bad bytes; if it is
            # almost all valid UTF-8, keep it UTF-8 and replace the bad bytes.
            text = body.decode("utf-8", errors="replace")
            bad = text.count("\ufffd")
            if bad <= max(3, len(body) // 1000):
                warnings.append(f"{bad} invalid UTF-8 byte sequence(s) replaced")
                data, headers = _as_utf8_document(text, headers)
                return data, headers, "utf-8"
    return body, headers, None


def _check_entities(body: bytes, headers: Mapping[str, str], url: str) -> None:
    """Refuse any entity declaration, in the raw bytes or in the document as feedparser decodes it."""
    if _ENTITY_DECL.search(body):
        raise ParseError(url, "entities", "the feed declares XML entities (<!ENTITY), refused")
    try:
        decoded = convert_to_utf8(dict(headers), body, {})
    except Exception:  # feedparser's own decoder failing is a malformed feed
        decoded = b""
    if decoded is not body and _ENTITY_DECL.search(decoded):
        raise ParseError(url, "entities", "the feed declares XML entities (<!ENTITY), refused")
    # UTF-16/32 without a BOM or declaration that feedparser might still sniff.
    if b"\x00" in body[:256]:
        for codec in ("utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"):
            text = body.decode(codec, errors="ignore")
            if re.search(r"<!\s*ENTITY", text, re.I):
                raise ParseError(url, "entities", "the feed declares XML entities (<!ENTITY), refused")


def looks_mojibake(text: str) -> bool:
    """True if ``text`` is Arabic decoded with the wrong codec.

    Two shapes: UTF-8 Arabic bytes read as a single-byte codec (Ø§Ù„, ط¹ط§) --
    re-encoding with that codec gives valid UTF-8 with Arabic letters; and
    windows-1256 bytes read as windows-1252/latin-1 (ÇáÚÑÈí) -- mostly Latin-1
    accented letters that become Arabic letters under cp1256.
    """
    if len(text) < 4 or text.isascii() or not _SUSPECT.search(text):
        return False
    for codec in _MISREAD_CODECS:
        try:
            raw = text.encode(codec)
        except UnicodeEncodeError:
            continue
        if raw.isascii():
            return False
        try:
            again = raw.decode("utf-8")
        except UnicodeDecodeError:
            continue
        if again != text and _ARABIC_LETTER.search(again):
            return True
    letters = [c for c in text if c.isalpha()]
    latin1 = len(_LATIN1_LETTER.findall(text))
    if len(letters) >= 6 and latin1 >= 0.5 * len(letters) and not _ARABIC_LETTER.search(text):
        try:
            as_arabic = text.encode("cp1252", errors="ignore").decode("cp1256", errors="ignore")
        except UnicodeError:
            return False
        arabic = len(_ARABIC_LETTER.findall(as_arabic))
        return arabic >= 0.6 * len(letters)
    return False


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
    data, fp_headers, forced = _prepare_bytes(body, headers or {}, encoding, warnings, url)
    _check_entities(data, fp_headers, url)
    if _HTML_START.match(data[:4096]) and b"<rss" not in data[:4096] and b"<feed" not in data[:4096]:
        raise ParseError(url, "not_feed", "the server sent an HTML page, not a feed")

    try:
        # Sanitizing and URI resolution cost half the parse time and we reduce
        # every field to plain text anyway.
        result = feedparser.parse(io.BytesIO(data), response_headers=fp_headers,
                                  sanitize_html=False, resolve_relative_uris=False)
    except Exception as exc:  # feedparser should not raise, but a bad feed must never crash a poll
        raise ParseError(url, "malformed", f"feedparser failed: {type(exc).__name__}: {exc}") from None

    version = result.get("version") or ""
    entries = result.get("entries") or []
    feed_meta = result.get("feed") or {}
    if result.get("bozo"):
        exc = result.get("bozo_exception")
        if not version and not entries:
            if b"<html" in data[:4096].lower():
                raise ParseError(url, "not_feed", "the server sent an HTML page, not a feed")
            raise ParseError(url, "not_feed" if not feed_meta else "malformed",
                             f"not a readable feed: {type(exc).__name__ if exc else 'bozo'}: {exc}")
        if not entries and isinstance(exc, xml.sax.SAXException):
            # A feed cut short (lying Content-Length, dropped connection) must
            # fail this poll rather than look like a feed with no news.
            raise ParseError(url, "malformed", f"no items readable: {type(exc).__name__ if exc else 'bozo'}: {exc}")
        warnings.append(f"{type(exc).__name__ if exc else 'bozo'}: {exc}")
    elif not version and not entries:
        raise ParseError(url, "not_feed", "no RSS/Atom feed found in the body")

    base = result.get("href") or url
    feed_title = html_to_text(feed_meta.get("title"), MAX_TITLE_CHARS) or None
    items: list[Item] = []
    if len(entries) > max_items:
        warnings.append(f"{len(entries)} entries, only the first {max_items} were read")
    for entry in entries[:max_items]:
        item = _item(entry, feed_name, base)
        if item is not None:
            items.append(item)

    _check_mojibake(url, feed_title, items, warnings)

    ttl = None
    raw_ttl = feed_meta.get("ttl")
    if raw_ttl is not None:
        try:
            minutes = int(str(raw_ttl).strip())
            if 0 < minutes <= 7 * 24 * 60:
                ttl = minutes * 60
        except ValueError:
            warnings.append(f"ignored invalid <ttl> {str(raw_ttl)[:20]!r}")
    return ParsedFeed(url=url, title=feed_title, items=items, ttl_seconds=ttl,
                      warnings=warnings, encoding=forced or result.get("encoding") or None)


def _item(entry: Mapping[str, Any], feed_name: str, base: str) -> Item | None:
    title = html_to_text(entry.get("title"), MAX_TITLE_CHARS)
    summary_html = entry.get("summary")
    if not summary_html:
        content = entry.get("content") or []
        if content and isinstance(content[0], Mapping):
            summary_html = content[0].get("value")
    summary = html_to_text(summary_html)
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
                summary=summary if summary != title else "", link=link and canonical_link(link),
                guid=guid, published=published, author=author)


def _check_mojibake(url: str, feed_title: str | None, items: list[Item], warnings: list[str]) -> None:
    fields = [t for t in [feed_title] + [i.title for i in items[:50]] + [i.summary for i in items[:20]] if t]
    if not fields:
        return
    bad = sum(1 for t in fields if looks_mojibake(t))
    if bad and bad * 3 >= len(fields):
        raise ParseError(url, "mojibake", f"{bad} of {len(fields)} text fields look like Arabic decoded "
                         "with the wrong character set; set the feed's `encoding:` override")
    if bad:
        warnings.append(f"{bad} text field(s) look like mis-decoded Arabic")


def extract_article(html: bytes, url: str) -> str | None:
    """Main text of an article page (trafilatura), or None if nothing usable was found."""
    if not html:
        return None
    try:
        import trafilatura  # imported lazily: only feeds with full-text fetch need it

        text = trafilatura.extract(html, url=url, include_comments=False, include_tables=False,
                                   favor_precision=True, deduplicate=True)
    except Exception as exc:  # trafilatura on hostile HTML must not take the poll down
        log.warning("article extraction failed for %s: %s", url, type(exc).__name__)
        return None
    if not text:
        return None
    text = " ".join(text.split())
    return text or None
