"""Turn alerts into messages: Telegram HTML, email (subject/text/HTML), console text.

Why here and not in templates: everything that protects the reader is done
in Python before a template sees it. Feed strings are escaped (Jinja2
autoescape for the HTML templates; matched words are wrapped in ``<b>`` by
``highlight`` which escapes each piece), runs of Latin letters, digits and
URLs are wrapped in Unicode isolates (FSI ... PDI) so they keep their order
inside Arabic lines, Telegram messages are split on safe boundaries, and
email subjects are single-line and short. Templates (``monitor/templates``,
overridable file by file through ``templates_dir``) only decide the layout.

Every method takes a list of ``AlertView`` (frozen, loaded by
``monitor.state.outbox.load_views``): one alert, a group, or a digest.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup, escape

from monitor.state.alerts import PayloadHit
from monitor.state.outbox import AlertView, NoticeView
from monitor.types import Severity

__all__ = ["Renderer", "EmailParts", "StoryBlock", "RuleLine", "SourceLine", "split_telegram_html", "isolate_ltr",
           "highlight", "clean_subject", "notice_text", "notice_telegram", "notice_subject", "TELEGRAM_LIMIT",
           "SUBJECT_LIMIT"]

BUILTIN_TEMPLATES = Path(__file__).parent / "templates"
TELEGRAM_LIMIT = 4096
SUBJECT_LIMIT = 149
SNIPPET_CONTEXT = 120

FSI, PDI = "\u2068", "\u2069"
# Latin words, ASCII digits and URLs: left-to-right runs to isolate in RTL text.
_LTR_RUN = re.compile(r"https?://\S+|[A-Za-z0-9](?:[A-Za-z0-9 .,:/@#%&+=_'\-]*[A-Za-z0-9%])?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def isolate_ltr(text: str) -> str:
    """Wrap left-to-right runs in FSI/PDI so "F-16" or "3,000" keep their order in Arabic."""
    return _LTR_RUN.sub(lambda m: f"{FSI}{m.group(0)}{PDI}", text)


def _u16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _spans(hits: Iterable[PayloadHit], field: str, length: int) -> list[tuple[int, int]]:
    spans = sorted((max(0, h.start), min(length, h.end)) for h in hits if h.field == field and 0 <= h.start < h.end)
    merged: list[tuple[int, int]] = []
    for s, e in spans:
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(e, merged[-1][1]))
        elif s < length:
            merged.append((s, e))
    return merged


def highlight(text: str, spans: Sequence[tuple[int, int]], *, html: bool) -> str:
    """``text`` with spans in bold (``<b>`` escaped HTML, or «…» in plain text), LTR runs isolated."""
    out, pos = [], 0
    for s, e in spans:
        out.append(_piece(text[pos:s], html))
        inner = _piece(text[s:e], html)
        out.append(f"<b>{inner}</b>" if html else f"«{inner}»")
        pos = e
    out.append(_piece(text[pos:], html))
    joined = "".join(out)
    return Markup(joined) if html else joined


def _piece(text: str, html: bool) -> str:
    text = isolate_ltr(_CONTROL.sub(" ", text))
    return str(escape(text)) if html else text


def snippet(text: str, spans: Sequence[tuple[int, int]],
            context: int = SNIPPET_CONTEXT) -> tuple[str, list[tuple[int, int]]]:
    """The part of ``text`` around the first match (whole words), with spans shifted into it."""
    if not text:
        return "", []
    if not spans:
        cut = text[: 2 * context]
        if len(cut) < len(text):
            cut = cut.rsplit(" ", 1)[0] + " …"
        return cut, []
    start = max(0, spans[0][0] - context)
    end = min(len(text), spans[0][1] + context)
    if start > 0:
        space = text.find(" ", start)
        start = space + 1 if 0 <= space < spans[0][0] else start
    if end < len(text):
        space = text.rfind(" ", spans[0][1], end)
        end = space if space > 0 else end
    inside = [(s - start, e - start) for s, e in spans if s >= start and e <= end]
    prefix = "… " if start > 0 else ""
    suffix = " …" if end < len(text) else ""
    shifted = [(s + len(prefix), e + len(prefix)) for s, e in inside]
    return prefix + text[start:end] + suffix, shifted


def clean_subject(text: str, limit: int = SUBJECT_LIMIT) -> str:
    """One line (no CR/LF or other controls from feed text), at most ``limit`` characters."""
    text = " ".join(_CONTROL.sub(" ", text).split())
    if len(text) > limit:
        text = text[: limit - 1].rsplit(" ", 1)[0].rstrip() + "…"
    return text


_TOKEN = re.compile(r"<[^>]*>|&#?\w+;|[^<&]", re.S)
_TAG = re.compile(r"<(/?)([a-zA-Z0-9-]+)")


def split_telegram_html(html: str, limit: int = TELEGRAM_LIMIT) -> list[str]:
    """Split Telegram HTML into pieces of at most ``limit`` UTF-16 units.

    Cuts only between tokens (never inside a tag or an entity), preferably at
    a line break, else at a space; tags open at the cut are closed at the end
    of the piece and reopened at the start of the next.
    """
    if _u16(html) <= limit:
        return [html]
    tokens = _TOKEN.findall(html)
    pieces: list[str] = []
    carried: list[tuple[str, str]] = []  # (name, opening tag) open at the start of this piece
    i = 0
    while i < len(tokens):
        opening = "".join(t for _, t in carried)
        size, stack, j = _u16(opening), list(carried), i
        last_nl = last_sp = None
        while j < len(tokens):
            tok = tokens[j]
            new_stack = stack
            m = _TAG.match(tok)
            if m and not tok.endswith("/>"):
                if m.group(1):
                    idx = max((k for k, (n, _) in enumerate(stack) if n == m.group(2).lower()), default=None)
                    new_stack = stack[:idx] if idx is not None else stack
                else:
                    new_stack = stack + [(m.group(2).lower(), tok)]
            closing = sum(len(n) + 3 for n, _ in new_stack)
            if size + _u16(tok) + closing > limit and j > i:
                break
            size += _u16(tok)
            stack = new_stack
            j += 1
            if tok == "\n":
                last_nl = (j, list(stack), size)
            elif tok == " ":
                last_sp = (j, list(stack), size)
        if j >= len(tokens):
            cut, cut_stack = j, stack
        elif last_nl and last_nl[2] >= limit // 2:
            cut, cut_stack = last_nl[0], last_nl[1]
        elif last_sp:
            cut, cut_stack = last_sp[0], last_sp[1]
        elif last_nl:
            cut, cut_stack = last_nl[0], last_nl[1]
        else:
            cut, cut_stack = j, stack
        body = opening + "".join(tokens[i:cut]) + "".join(f"</{n}>" for n, _ in reversed(cut_stack))
        if body.strip():
            pieces.append(body)
        carried, i = cut_stack, cut
    return pieces


def entity_labels(hits: Iterable[PayloadHit]) -> list[str]:
    """One name per matched entity or keyword set, first mention first.

    The name is the alias the matcher found (``البوكمال``, as written in the
    rules), never the surface text with its clitics (``والبوكمال``) or a
    spacing variant (``لديرالزور``): those differ from hit to hit and would
    list one place several times.
    """
    out: dict[str, str] = {}
    for h in hits:
        key = h.entity or h.alias or h.text
        if key and key not in out:
            out[key] = isolate_ltr(" ".join(_CONTROL.sub(" ", h.alias or h.text).split()))
    return [v for v in out.values() if v]


@dataclass(frozen=True)
class EmailParts:
    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class RuleLine:
    """A rule that fired on the story, as a template shows it."""

    rule_id: str
    title: str
    severity: str


@dataclass(frozen=True)
class SourceLine:
    """One outlet that carried the story."""

    feed: str
    title: str
    link: str


@dataclass(frozen=True)
class StoryBlock:
    """What a template gets per story (``stories``): every rule that fired on it, the article once.

    ``headline`` and ``snippet`` are safe markup in the HTML templates (matches
    in ``<b>``, everything else escaped); every other string is plain text that
    autoescape escapes.
    """

    headline: str
    snippet: str
    entities: list[str]
    rules: list[RuleLine]
    rule_title: str
    rule_id: str
    severity: str
    outlet: str
    time: str
    link: str
    link_text: str
    sources: list[SourceLine]
    more_sources: int
    kind: str
    possible_repeat: bool
    plain_title: str
    is_update: bool
    earlier_rules: list[str]


def _time(ts: str | float | None, tz: ZoneInfo) -> str:
    try:
        if isinstance(ts, str):
            dt = datetime.fromisoformat(ts)
        elif ts is not None:
            dt = datetime.fromtimestamp(float(ts), UTC)
        else:
            return ""
    except (TypeError, ValueError, OverflowError, OSError):
        return ""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")


def _safe_link(url: str | None) -> str:
    """Only http(s) links become anchors (Telegram rejects others; javascript: never)."""
    url = (url or "").strip()
    return url if re.match(r"https?://[^\s<>\"]+$", url, re.I) else ""


def _plain(text: str | None) -> str:
    return isolate_ltr(_CONTROL.sub(" ", text or ""))


def _rank(severity: str) -> int:
    try:
        return Severity(severity).rank
    except ValueError:
        return 0


class Renderer:
    """Renders alert views with the built-in templates or the user's overrides."""

    def __init__(self, templates_dir: Path | str | None = None, *, tz: str = "UTC") -> None:
        search = [str(templates_dir)] if templates_dir else []
        search.append(str(BUILTIN_TEMPLATES))
        loader = FileSystemLoader(search)
        self._html = Environment(loader=loader, autoescape=True, trim_blocks=True, lstrip_blocks=True,
                                 keep_trailing_newline=False, undefined=StrictUndefined)
        self._text = Environment(loader=loader, autoescape=False, trim_blocks=True, lstrip_blocks=True,
                                 keep_trailing_newline=False, undefined=StrictUndefined)
        self.tz = ZoneInfo(tz)

    def _context(self, views: Sequence[AlertView], *, html: bool) -> dict[str, object]:
        """Template context: ``stories`` (one entry per story and kind, every rule that fired on it).

        ``alerts`` is the same list, kept for templates written before stories
        were grouped (each entry still has ``rule_title``/``severity``: the top rule's).
        """
        groups: dict[tuple[int, str], list[AlertView]] = {}
        for v in views:
            groups.setdefault((v.story_id, v.kind), []).append(v)
        stories = [self._story(group, html=html) for group in groups.values()]
        kinds = {s.kind for s in stories}
        return dict(stories=stories, alerts=stories, count=len(stories),
                    kind=kinds.pop() if len(kinds) == 1 else "alert",
                    possible_repeat=any(s.possible_repeat for s in stories))

    def _story(self, group: Sequence[AlertView], *, html: bool) -> StoryBlock:
        ranked = sorted(group, key=lambda v: (-_rank(v.severity), v.alert_id))
        first = min(group, key=lambda v: v.alert_id)  # the item that alerted first
        item = first.payload
        title, summary = item.title, item.summary
        # Hit offsets index one item's text: highlight with the hits of views showing this very text.
        hits = [h for v in group if (v.payload.title, v.payload.summary) == (title, summary) for h in v.payload.hits]
        snip, snip_spans = snippet(summary, _spans(hits, "body", len(summary)))
        sources: list[SourceLine] = []
        seen_feeds: set[str] = set()
        for s in first.sources:
            if s.feed not in seen_feeds:  # one line per outlet
                seen_feeds.add(s.feed)
                sources.append(SourceLine(_plain(s.feed), _plain(s.title), _safe_link(s.link)))
        rules: list[RuleLine] = []
        for v in ranked:
            if v.rule_id not in {r.rule_id for r in rules}:
                rules.append(RuleLine(v.rule_id, _plain(v.payload.rule_title or v.rule_id), v.severity))
        top = rules[0] if rules else RuleLine("", "", "info")
        earlier = [_plain(t) for t in dict.fromkeys(first.earlier_rules)]
        all_hits = sorted((h for v in ranked for h in v.payload.hits), key=lambda h: (h.field != "title", h.start))
        return StoryBlock(
            # Plain text marks matches with «» only in the snippet: Arabic headlines use «» as quotes.
            headline=highlight(title, _spans(hits, "title", len(title)) if html else [], html=html),
            snippet=highlight(snip, snip_spans, html=html),
            entities=entity_labels(all_hits),
            rules=rules, rule_title=top.title, rule_id=top.rule_id, severity=top.severity,
            outlet=_plain(item.feed),
            time=isolate_ltr(_time(item.published or first.created, self.tz)),
            link=_safe_link(item.link), link_text=isolate_ltr(_safe_link(item.link)),
            sources=sources, more_sources=max(0, len(sources) - 1),
            kind=first.kind, possible_repeat=any(v.possible_repeat for v in group),
            plain_title=_CONTROL.sub(" ", title), is_update=bool(earlier), earlier_rules=earlier,
        )

    def telegram(self, views: Sequence[AlertView], limit: int = TELEGRAM_LIMIT) -> list[str]:
        html = self._html.get_template("telegram.html.j2").render(**self._context(views, html=True)).strip()
        return split_telegram_html(html, limit)

    def email(self, views: Sequence[AlertView]) -> EmailParts:
        subject = self._text.get_template("email_subject.txt.j2").render(**self._context(views, html=False))
        text = self._text.get_template("email.txt.j2").render(**self._context(views, html=False))
        html = self._html.get_template("email.html.j2").render(**self._context(views, html=True))
        return EmailParts(clean_subject(subject.replace(FSI, "").replace(PDI, "")), text, html)

    def console(self, views: Sequence[AlertView]) -> str:
        return self._text.get_template("console.txt.j2").render(**self._context(views, html=False))


def notice_text(notices: Sequence[NoticeView]) -> str:
    """Operational notices as one plain text (they are the monitor's own words, not feed text)."""
    return "\n".join(n.body for n in notices)


def notice_telegram(notices: Sequence[NoticeView], limit: int = TELEGRAM_LIMIT) -> list[str]:
    return split_telegram_html(str(escape(notice_text(notices))), limit)


def notice_subject(notices: Sequence[NoticeView]) -> str:
    text = notice_text(notices)
    return clean_subject("news monitor: " + text.splitlines()[0] if text else "news monitor")
