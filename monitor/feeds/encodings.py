"""Decoding feed bodies: where feedparser's own detection gets Arabic feeds wrong.

* a UTF-8 BOM with a wrong declaration gives silent mojibake, so a BOM wins and
  the body is re-encoded to UTF-8 with a matching declaration (likewise for a
  per-feed ``encoding:`` override);
* a UTF-8 body with a few bad bytes would be decoded whole as ISO-8859-2 (or
  whatever chardet guesses), so it stays UTF-8 with the bad bytes replaced;
* any ``<!ENTITY`` declaration is refused in every encoding feedparser reads;
* Arabic decoded with the wrong codec must flag the feed (``mojibake``), never
  produce alerts on garbage.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from email.message import Message

from monitor.errors import ParseError
from monitor.types import Item

__all__ = ["bom_codec", "content_type", "prepare_bytes", "check_entities", "looks_mojibake", "check_mojibake"]

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
_ENTITY_TEXT = re.compile(r"<!\s*ENTITY", re.I)
_HIDING_CODECS = ("utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be", "cp037")

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




def content_type(value: str) -> tuple[str, str]:
    """(media type, charset) of a Content-Type header, lower-case, '' when absent (stdlib parser)."""
    message = Message()
    message["content-type"] = value
    charset = message.get_param("charset")
    return message.get_content_type().lower(), (charset if isinstance(charset, str) else "").strip().lower()


def bom_codec(body: bytes) -> str | None:
    for mark, codec in _BOMS:
        if body.startswith(mark):
            return codec
    return None


def _declared_encodings(body: bytes, headers: Mapping[str, str]) -> tuple[str, str]:
    """(HTTP charset, XML declaration encoding), lower-case, '' when absent."""
    _, http_charset = content_type(headers.get("content-type") or "")
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
    media, _ = content_type(headers.get("content-type") or "")
    if not (media.endswith("xml") or media.endswith("+xml")):
        media = "application/xml"
    new_headers["content-type"] = f"{media}; charset=utf-8"
    return raw, new_headers


def prepare_bytes(body: bytes, headers: Mapping[str, str], encoding: str | None,
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
    bom = bom_codec(body)
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


def check_entities(body: bytes, url: str) -> None:
    """Refuse any entity declaration, in whatever encoding feedparser might read the body.

    feedparser's loose parser expands declared entities without limit. Every
    ASCII-compatible encoding (UTF-8, windows-1256, ISO-8859-6, ...) shows the
    declaration in the raw bytes; UTF-16/32 and EBCDIC hide it from a byte scan,
    so the body is also read in those.
    """
    if _ENTITY_DECL.search(body):
        raise ParseError(url, "entities", "the feed declares XML entities (<!ENTITY), refused")
    for codec in _HIDING_CODECS:
        if _ENTITY_TEXT.search(body.decode(codec, errors="ignore")):
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


def check_mojibake(url: str, feed_title: str | None, items: list[Item], warnings: list[str]) -> None:
    fields = [t for t in [feed_title] + [i.title for i in items[:50]] + [i.summary for i in items[:20]] if t]
    if not fields:
        return
    bad = sum(1 for t in fields if looks_mojibake(t))
    if bad and bad * 3 >= len(fields):
        raise ParseError(url, "mojibake", f"{bad} of {len(fields)} text fields look like Arabic decoded "
                         "with the wrong character set; set the feed's `encoding:` override")
    if bad:
        warnings.append(f"{bad} text field(s) look like mis-decoded Arabic")


