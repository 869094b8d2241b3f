"""Generate the story-dedup evaluation set (issue 13) from texts read in place.

    python bench/dedup_eval/generate.py [OUT_DIR] [--seed 13] [--split dev|heldout|both]
                                        [--real-news PATH] [--corpus DIR]

Why generated, and generated here: the project's own dedup set was built together with its
threshold, so it says nothing. This set is built the way outlets really republish (issue 13), from
texts nobody on the project wrote: the five corpus articles (``tests/data/corpus``) and the labelled
real-news paragraphs (``../shared/corpora/real-news/dev.jsonl``, or ``--real-news`` /
``$MONITOR_REAL_NEWS``), which are read in place and never copied into the repository. Only the
site furniture, footers and stock background sentences are the project's own (``templates.yaml``).

Two splits, ``dev`` and ``heldout``, share no source text (each real-news page and each corpus
article belongs to one split, by a fixed rule that does not depend on the seed) and no furniture,
footer or stock sentence (each split has its own six outlets). Tune on ``dev`` only.

What is generated per split (kinds of items):

* long articles (a real-news page with 4+ paragraphs, or the first half of a corpus article) on five
  outlets: the ``original`` under its outlet's furniture; ``republished`` under another headline and
  another site's furniture ("related" lines between paragraphs, some quoting another article's
  headline, share bar, tags, source, follow-us, comments-closed, copyright...) with a byline and a
  dateline added (and sometimes a stock background sentence); ``dropped``, the same with one
  paragraph dropped; ``edited``, paragraphs reordered and ~5 % of the words edited (synonyms, name
  swaps such as «قوات سوريا الديمقراطية» -> «قسد», deleted particles); ``excerpt``, the first 60 % of
  the body ending in a truncation mark;
* briefs (~50 words, from a short real-news page) under a ~100-word site footer (``brief_original``),
  the same brief on another site under another headline and footer (``brief``), and sometimes an
  edited one (``brief_edited``);
* distinct articles about the same front (``front``): sentences of different corpus articles (their
  second halves) mixed with whole stock background sentences; some republished once (``front_copy``);
* cosmetic noise on every item (HTML entities, NBSP, CRLF, tatweel, diacritics, Persian letters,
  Arabic-Indic digits).

Ground truth: every item belongs to one cluster. Duplicate pairs are all pairs inside a cluster,
by kind: the copy's kind against the original, ``excerpt_vs_dropped`` and ``brief_vs_edited`` for
those two copies against each other, ``copy_vs_copy`` for the other copy pairs. Distinct pairs
are chosen across clusters, by kind (the first that applies): ``quoted_headline`` (a related line
of one quotes the other's headline), ``same_footer`` (two briefs under one site footer),
``shared_stock`` (a whole stock sentence in common), ``same_front`` (both made from the corpus
articles: same places and actors), ``same_outlet``, ``other``; the easier kinds sampled.

Arrival order: the members of a cluster sit on distinct outlets, and the original on the outlet
that comes first in ``EvalSet.outlets``; so polling the outlets in that order brings every original
before its copies, and in the reverse order every copy before its original.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import json
import os
import random
import re
import sys
import tempfile
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from itertools import combinations
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape as xml_escape

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TEMPLATES = HERE / "templates.yaml"
CORPUS_DIR = ROOT / "tests" / "data" / "corpus"
REAL_NEWS_ENV = "MONITOR_REAL_NEWS"
REAL_NEWS_IN_SHARED = Path("shared") / "corpora" / "real-news" / "dev.jsonl"
SPLITS = ("dev", "heldout")
DEFAULT_SEED = 13

ORIGINAL_KINDS = ("original", "brief_original", "front")
COPY_KINDS = ("republished", "dropped", "edited", "excerpt", "brief", "brief_edited", "front_copy")
ITEM_KINDS = ORIGINAL_KINDS + COPY_KINDS
DUPLICATE_PAIR_KINDS = COPY_KINDS + ("excerpt_vs_dropped", "brief_vs_edited", "copy_vs_copy")
DISTINCT_PAIR_KINDS = ("quoted_headline", "same_footer", "shared_stock", "same_front", "same_outlet", "other")
NOISE_KINDS = ("entities", "nbsp", "crlf", "tatweel", "diacritics", "persian", "digits")

# At most this many distinct pairs of a kind are kept (a seeded sample), so that no kind swamps the
# rate; the pairs quoting a headline and the briefs under one footer are all kept.
DISTINCT_SAMPLES = {"shared_stock": 40, "same_front": 30, "same_outlet": 30, "other": 20}
EDIT_RATE = 0.05
EXCERPT_SHARE = 0.6
BRIEF_WORDS = 50
FRONT_WORDS = (40, 75)  # words of corpus sentences in a "same front" article (then two stock sentences)
BRIEF_EDITED_SHARE = 0.4  # of the brief clusters also carry an edited copy on a third site


class SourceError(Exception):
    """A source text or template file that cannot be used; the message names file, line and field."""


# --------------------------------------------------------------------------- templates

class Outlet(BaseModel):
    """One generated site: its feed name and the furniture its CMS adds (see templates.yaml)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    feed: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    name: str
    host: str
    headline_prefixes: tuple[str, ...] = Field(min_length=1)
    related_prefix: str
    evergreen: tuple[str, ...] = Field(min_length=1)
    share: str
    tags_prefix: str
    tags_separator: str
    show_more: str
    back_to_top: str
    source_line: str
    follow_us: str
    comments_closed: str
    copyright: str
    byline: str
    authors: tuple[str, ...] = Field(min_length=1)
    dateline: str
    truncation: str
    tail: tuple[str, ...]
    footer_everywhere: bool
    footer: str

    def standing_furniture(self, year: int = 2017) -> list[str]:
        """The lines under every article of this site that do not depend on the article (its tail
        without the tags; the footer too when ``footer_everywhere``)."""
        lines = [self.copyright.format(year=year) if name == "copyright" else str(getattr(self, name))
                 for name in self.tail if name != "tags"]
        return lines + [self.footer] if self.footer_everywhere else lines

    def template_strings(self) -> tuple[str, ...]:
        """Every piece of furniture text (for the split-disjointness check), footer by sentence."""
        singles = (self.related_prefix, self.share, self.tags_prefix, self.show_more, self.back_to_top,
                   self.source_line, self.follow_us, self.comments_closed, self.copyright, self.byline,
                   self.dateline, self.truncation)
        footer = tuple(s for s in re.split(r"(?<=[.؟!])\s+", self.footer) if s.strip())
        return tuple(s for s in singles + self.headline_prefixes + self.evergreen + self.authors + footer if s.strip())


_TAIL_FIELDS = ("share", "tags", "show_more", "back_to_top", "source_line", "follow_us", "comments_closed",
                "copyright")


class _SplitTemplates(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    outlets: tuple[Outlet, ...] = Field(min_length=6, max_length=6)
    stock: tuple[str, ...] = Field(min_length=4)


class _Edits(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    phrases: dict[str, str]
    words: dict[str, str]
    particles: tuple[str, ...]


class Templates(BaseModel):
    """The whole templates.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    splits: dict[str, _SplitTemplates]
    places: tuple[str, ...] = Field(min_length=1)
    tags: dict[str, tuple[str, ...]]
    default_tag: str
    edits: _Edits


def load_templates(path: Path = TEMPLATES) -> Templates:
    """Read and validate the templates file; errors name the file and the field."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        templates = Templates.model_validate(data)
    except OSError as exc:
        raise SourceError(f"{path}: cannot read: {exc}") from None
    except yaml.YAMLError as exc:
        raise SourceError(f"{path}: not valid YAML: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise SourceError(f"{path}: field {where}: {first['msg']}") from None
    for split in SPLITS:
        if split not in templates.splits:
            raise SourceError(f"{path}: field splits.{split}: missing")
        for index, outlet in enumerate(templates.splits[split].outlets):
            for name in outlet.tail:
                if name not in _TAIL_FIELDS:
                    raise SourceError(f"{path}: field splits.{split}.outlets.{index}.tail: unknown piece {name!r} "
                                      f"(one of {', '.join(_TAIL_FIELDS)})")
    return templates


# --------------------------------------------------------------------------- source texts

@dataclass(frozen=True)
class Source:
    """One source text: a real-news page (its paragraphs in order) or part of a corpus article.

    ``origin`` is what the splits are disjoint on (the page URL or the corpus file); ``units`` name
    the paragraphs used (real-news row ids, ``file#n`` for corpus lines).
    """

    origin: str
    headline: str | None
    paragraphs: tuple[str, ...]
    units: tuple[str, ...]

    @property
    def words(self) -> int:
        return sum(len(p.split()) for p in self.paragraphs)


@dataclass(frozen=True)
class SplitSources:
    long: tuple[Source, ...]    # long articles
    briefs: tuple[Source, ...]  # short pages -> briefs
    pool: tuple[Source, ...]    # corpus second halves -> sentences of the "same front" articles


def find_real_news(explicit: str | Path | None = None) -> Path:
    """``explicit``, else ``$MONITOR_REAL_NEWS``, else ``shared/corpora/real-news/dev.jsonl`` beside the
    repository or beside one of its parent folders (a worktree under /work/wt finds /work/shared)."""
    chosen = explicit or os.environ.get(REAL_NEWS_ENV)
    candidates = [Path(chosen)] if chosen else [parent / REAL_NEWS_IN_SHARED for parent in ROOT.parents]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise SourceError("real-news paragraphs not found: looked for " + ", ".join(map(str, candidates))
                      + f" (pass --real-news or set ${REAL_NEWS_ENV})")


def _clean(text: str) -> str:
    return " ".join(text.split())


def read_real_news(path: Path) -> list[tuple[str, list[tuple[str, str]]]]:
    """The pages of the real-news file in file order: (source URL, [(row id, paragraph)])."""
    pages: dict[str, list[tuple[str, str]]] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"{path}: cannot read: {exc}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SourceError(f"{path}:{number}: not a JSON object: {exc.msg}") from None
        if not isinstance(row, dict):
            raise SourceError(f"{path}:{number}: not a JSON object")
        for name in ("id", "source", "text"):
            if not isinstance(row.get(name), str) or not row[name].strip():
                raise SourceError(f"{path}:{number}: field {name!r} missing or not a non-empty string")
        pages.setdefault(row["source"], []).append((row["id"], _clean(row["text"])))
    if not pages:
        raise SourceError(f"{path}: no paragraphs")
    return list(pages.items())


def _page_split(pages: list[tuple[str, list[tuple[str, str]]]]) -> dict[str, str]:
    """Page URL -> split. Pages sorted by size (then a hash of the URL) are dealt out
    dev, heldout, heldout, dev, ... so both splits get pages of every size. Independent of the seed."""
    ranked = sorted(pages, key=lambda page: (-len(page[1]), hashlib.sha1(page[0].encode()).hexdigest()))
    deal = ("dev", "heldout", "heldout", "dev")
    return {url: deal[index % 4] for index, (url, _) in enumerate(ranked)}


def _headline_of(paragraphs: list[str]) -> tuple[str | None, list[str]]:
    """A short first (or second) paragraph without a final stop is the page's headline."""
    for index, paragraph in enumerate(paragraphs[:2]):
        words = len(paragraph.split())
        if 6 <= words <= 14 and not paragraph.rstrip().endswith((".", ":", "…")):
            return paragraph, paragraphs[:index] + paragraphs[index + 1:]
    return None, paragraphs


_LEFTOVER = re.compile(r"^\s*(?:[اإ]قرأ\s+أيضا|اظهر المزيد|زر الذهاب إلى الأعلى)")


def read_corpus_article(path: Path) -> tuple[str | None, list[tuple[str, str]]]:
    """(headline, [(unit id, paragraph)]) of one corpus article: its scraped leftovers dropped, a
    repeated line kept once, short lines (sub-heads, bylines) joined to the next paragraph."""
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"{path}: cannot read: {exc}") from None
    lines: list[tuple[int, str]] = []
    for number, line in enumerate(raw.splitlines(), 1):
        text = _clean(line)
        if len(text.split()) < 2 or _LEFTOVER.match(text) or (lines and lines[-1][1] == text):
            continue
        lines.append((number, text))
    if not lines:
        raise SourceError(f"{path}: no text")
    headline = None
    if len(lines[0][1].split()) <= 15 and not lines[0][1].endswith("."):
        headline = lines.pop(0)[1]
    paragraphs: list[tuple[str, str]] = []
    pending: list[tuple[int, str]] = []
    for number, text in lines:
        pending.append((number, text))
        if len(text.split()) >= 8:
            paragraphs.append((f"{path.name}#{pending[0][0]}", " ".join(t for _, t in pending)))
            pending = []
    if pending:
        paragraphs.append((f"{path.name}#{pending[0][0]}", " ".join(t for _, t in pending)))
    return headline, paragraphs


def load_sources(split: str, real_news: Path, corpus_dir: Path = CORPUS_DIR) -> SplitSources:
    """The source texts of ``split``: real-news pages dealt by ``_page_split`` (4+ paragraphs: a long
    article, fewer: a brief); corpus articles by position (even: dev, odd: heldout), each cut in
    two: the first half a long article, the second half sentences for the "same front" articles."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r} (one of {', '.join(SPLITS)})")
    pages = read_real_news(real_news)
    owner = _page_split(pages)
    long: list[Source] = []
    briefs: list[Source] = []
    for url, rows in pages:
        if owner[url] == split:
            headline, paragraphs = _headline_of([text for _, text in rows])
            source = Source(url, headline, tuple(paragraphs), tuple(row_id for row_id, _ in rows))
            (long if len(rows) >= 4 else briefs).append(source)
    pool: list[Source] = []
    articles = sorted(corpus_dir.glob("*.txt"))
    if len(articles) < 2:
        raise SourceError(f"{corpus_dir}: expected the corpus articles (*.txt), found {len(articles)}")
    for index, path in enumerate(articles):
        if SPLITS[index % 2] == split:
            first, second = _corpus_halves(path)
            long.append(first)
            pool.append(second)
    return SplitSources(tuple(long), tuple(briefs), tuple(pool))


def _corpus_halves(path: Path) -> tuple[Source, Source]:
    """A corpus article cut at half its words (at least two paragraphs in the first half)."""
    headline, units = read_corpus_article(path)
    total = sum(len(text.split()) for _, text in units)
    cut, running = 0, 0
    while cut < len(units) - 1 and (running < total / 2 or cut < 2):
        running += len(units[cut][1].split())
        cut += 1
    first, second = units[:cut], units[cut:]
    return (Source(path.name, headline, tuple(t for _, t in first), tuple(u for u, _ in first)),
            Source(path.name, None, tuple(t for _, t in second), tuple(u for u, _ in second)))


# --------------------------------------------------------------------------- the set

@dataclass(frozen=True)
class EvalItem:
    """One generated feed entry and its ground truth.

    ``body`` is the HTML served as the RSS description. ``sources`` are the source units it was
    made from, ``stock`` the indexes of the stock sentences it carries, ``quotes`` the guid of the
    item whose headline one of its "related" lines quotes, ``noise`` the cosmetic noise applied.
    """

    outlet: str
    guid: str
    link: str
    title: str
    body: str
    published: datetime
    cluster: str
    kind: str
    sources: tuple[str, ...]
    stock: tuple[int, ...] = ()
    quotes: str | None = None
    noise: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        """Title and body as plain text (what a reader sees)."""
        return f"{self.title}\n{html_text(self.body)}"

    def as_json(self) -> dict[str, Any]:
        return {"outlet": self.outlet, "guid": self.guid, "link": self.link, "title": self.title, "body": self.body,
                "published": self.published.isoformat(), "cluster": self.cluster, "kind": self.kind,
                "sources": list(self.sources), "stock": list(self.stock), "quotes": self.quotes,
                "noise": list(self.noise)}


@dataclass(frozen=True)
class Pair:
    """Two items (guids) that must (duplicate) or must not (distinct) share a story."""

    first: str
    second: str
    kind: str


@dataclass(frozen=True)
class EvalSet:
    seed: int
    split: str
    outlets: tuple[Outlet, ...]
    stock: tuple[str, ...]
    items: tuple[EvalItem, ...]
    duplicate_pairs: tuple[Pair, ...]
    distinct_pairs: tuple[Pair, ...]

    def clusters(self) -> dict[str, tuple[str, ...]]:
        """Cluster id -> guids of its items, in generation order."""
        out: dict[str, list[str]] = {}
        for item in self.items:
            out.setdefault(item.cluster, []).append(item.guid)
        return {cluster: tuple(guids) for cluster, guids in out.items()}

    def outlet_items(self, outlet: Outlet) -> list[EvalItem]:
        return [item for item in self.items if item.outlet == outlet.feed]

    def write(self, folder: Path) -> list[Path]:
        """Write the set under ``folder`` (created): items, pairs, clusters, one RSS file per outlet."""
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "feeds").mkdir(exist_ok=True)
        written = [folder / "items.jsonl", folder / "pairs.jsonl", folder / "clusters.json", folder / "manifest.json"]
        written[0].write_text("".join(json.dumps(i.as_json(), ensure_ascii=False) + "\n" for i in self.items),
                              encoding="utf-8")
        pairs = [(p, True) for p in self.duplicate_pairs] + [(p, False) for p in self.distinct_pairs]
        written[1].write_text("".join(json.dumps({"first": p.first, "second": p.second, "kind": p.kind,
                                                  "duplicate": dup}, ensure_ascii=False) + "\n"
                                      for p, dup in pairs), encoding="utf-8")
        written[2].write_text(json.dumps(self.clusters(), ensure_ascii=False, indent=1), encoding="utf-8")
        written[3].write_text(json.dumps({
            "seed": self.seed, "split": self.split, "items": len(self.items), "clusters": len(self.clusters()),
            "outlets": [{"feed": o.feed, "name": o.name, "host": o.host} for o in self.outlets],
            "item_kinds": _count(i.kind for i in self.items),
            "duplicate_pairs": _count(p.kind for p in self.duplicate_pairs),
            "distinct_pairs": _count(p.kind for p in self.distinct_pairs),
        }, ensure_ascii=False, indent=1), encoding="utf-8")
        for outlet in self.outlets:
            path = folder / "feeds" / f"{outlet.feed}.xml"
            path.write_bytes(feed_xml(outlet, self.outlet_items(outlet)))
            written.append(path)
        return written


def _count(values: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for value in values:
        out[value] = out.get(value, 0) + 1
    return dict(sorted(out.items()))


def feed_xml(outlet: Outlet, items: Sequence[EvalItem]) -> bytes:
    """An RSS 2.0 document of ``items`` in the given order. CR is written as ``&#13;`` because an XML
    parser folds raw CRLF to LF, and the CRLF noise must reach the daemon."""
    def text(value: str) -> str:
        return xml_escape(value).replace("\r", "&#13;")

    entries = "".join(
        f"<item><title>{text(i.title)}</title><link>{text(i.link)}</link>"
        f'<guid isPermaLink="false">{text(i.guid)}</guid><pubDate>{format_datetime(i.published)}</pubDate>'
        f"<description>{text(i.body)}</description></item>\n" for i in items)
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel><title>{text(outlet.name)}</title>'
            f"<link>https://{outlet.host}/</link><description>{text(outlet.name)}</description>\n{entries}"
            "</channel></rss>\n").encode()


_BLOCK_TAGS = re.compile(r"<(?:/?p|br|/?div)[^>]*>", re.IGNORECASE)


def html_text(fragment: str) -> str:
    """Plain text of a body fragment: tags removed, entities decoded, whitespace folded."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", _BLOCK_TAGS.sub(" ", fragment))).split())


# --------------------------------------------------------------------------- text transformations

_SENTENCE_END = re.compile(r"(?<=[.!؟?])\s+")
_ARABIC_LETTER = re.compile(r"[\u0621-\u064a]")
_NON_JOINING = set("اأإآدذرزوؤةىء")
_HARAKAT = ("\u064e", "\u064f", "\u0650", "\u0652", "\u0651\u064e", "\u064b")
_PUNCT = "«»\"'“”‘’()[]،,.:;؛!؟?…-–"
_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
_PERSIAN_DIGITS = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")


def sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(text) if s.strip()]


def clauses(sentence: str, longest: int = 40) -> list[str]:
    """A sentence longer than ``longest`` words cut at the comma nearest its middle (again while
    too long), so the mixed articles can take part of a long corpus sentence."""
    words = sentence.split()
    if len(words) <= longest:
        return [sentence]
    cuts = [i + 1 for i, w in enumerate(words[:-1]) if w.endswith(("،", ",", "؛")) and 8 <= i + 1 <= len(words) - 8]
    if not cuts:
        return [sentence]
    cut = min(cuts, key=lambda i: abs(i - len(words) / 2))
    return clauses(" ".join(words[:cut]), longest) + clauses(" ".join(words[cut:]), longest)


def _strip_punct(token: str) -> tuple[str, str, str]:
    """(leading punctuation, core, trailing punctuation) of a whitespace token."""
    core = token.lstrip(_PUNCT)
    lead = token[:len(token) - len(core)]
    stripped = core.rstrip(_PUNCT)
    return lead, stripped, core[len(stripped):]


def _edit_operations(cores: Sequence[str], edits: _Edits) -> list[tuple[int, int, str | None]]:
    """Every edit the lexicon allows: (first token, tokens spanned, new core or None to delete)."""
    operations: list[tuple[int, int, str | None]] = []
    for phrase, short_name in edits.phrases.items():
        words = phrase.split()
        for start in range(len(cores) - len(words) + 1):
            if list(cores[start:start + len(words)]) == words:
                operations.append((start, len(words), short_name))
    for index, core in enumerate(cores):
        conjunction = core[:1] if core[:1] in ("و", "ف") and len(core) > 2 else ""
        bare = core[len(conjunction):]
        if core in edits.words:
            operations.append((index, 1, edits.words[core]))
        elif conjunction and bare in edits.words:
            operations.append((index, 1, conjunction + edits.words[bare]))
        elif core in edits.particles:
            operations.append((index, 1, None))
        elif conjunction and bare in edits.particles:  # "وقد قال" -> "وقال"
            operations.append((index, 1, conjunction))
    return operations


def edit_words(text: str, rate: float, rng: random.Random, edits: _Edits) -> tuple[str, int]:
    """An outlet's copy-edit of ``text``: name swaps, synonyms and deleted particles touching about
    ``rate`` of the words (then short function words deleted if the lexicon found too few).
    Returns the text and the number of words changed."""
    tokens = text.split()
    target = max(1, round(rate * len(tokens)))
    cores = [_strip_punct(t)[1] for t in tokens]
    operations = _edit_operations(cores, edits)
    rng.shuffle(operations)
    taken = [False] * len(tokens)
    chosen: dict[int, tuple[int, str | None]] = {}
    changed = 0
    for start, length, new_core in operations:
        if changed >= target:
            break
        if any(taken[start:start + length]):
            continue
        taken[start:start + length] = [True] * length
        chosen[start] = (length, new_core)
        changed += length
    short = [i for i, core in enumerate(cores)
             if not taken[i] and 1 < len(core) <= 3 and core not in ("لا", "لم", "لن", "ما")]
    rng.shuffle(short)
    for index in short[:max(0, target - changed)]:
        chosen[index] = (1, None)
        changed += 1
    return " ".join(_apply_edits(tokens, chosen)), changed


def _apply_edits(tokens: Sequence[str], chosen: dict[int, tuple[int, str | None]]) -> list[str]:
    """The tokens with the chosen edits made, punctuation around an edited span kept; a deleted
    word's leading punctuation, or a kept conjunction, joins the next word."""
    out: list[str] = []
    glue = ""
    index = 0
    while index < len(tokens):
        if index not in chosen:
            out.append(glue + tokens[index])
            glue, index = "", index + 1
            continue
        length, new_core = chosen[index]
        lead = _strip_punct(tokens[index])[0]
        trail = _strip_punct(tokens[index + length - 1])[2]
        if new_core is None or new_core in ("و", "ف"):
            glue += lead + (new_core or "")
            if trail and out:
                out[-1] += trail
        else:
            out.append(glue + lead + new_core + trail)
            glue = ""
        index += length
    if glue.strip():
        out.append(glue.strip())
    return [w for w in out if w]


def excerpt(paragraphs: Sequence[str], share: float, mark: str) -> list[str]:
    """The first ``share`` of the words, paragraph breaks kept, ending in ``mark``."""
    total = sum(len(p.split()) for p in paragraphs)
    budget = max(1, round(share * total))
    out: list[str] = []
    for paragraph in paragraphs:
        words = paragraph.split()
        if len(words) >= budget:
            out.append(" ".join(words[:budget]).rstrip(_PUNCT) + mark)
            return out
        out.append(paragraph)
        budget -= len(words)
    out[-1] = out[-1].rstrip(_PUNCT) + mark
    return out


def _tatweel(word: str, rng: random.Random) -> str:
    spots = [i for i in range(1, len(word) - 1) if word[i - 1] not in _NON_JOINING
             and _ARABIC_LETTER.match(word[i - 1]) and _ARABIC_LETTER.match(word[i])]
    if not spots:
        return word
    i = rng.choice(spots)
    return word[:i] + "\u0640" * rng.randint(1, 2) + word[i:]


def _diacritize(word: str, rng: random.Random) -> str:
    spots = [i + 1 for i, c in enumerate(word) if _ARABIC_LETTER.match(c) and c not in "اى"]
    for i in sorted(rng.sample(spots, min(len(spots), rng.randint(1, 2))), reverse=True):
        word = word[:i] + rng.choice(_HARAKAT) + word[i:]
    return word


def text_noise(text: str, kinds: Sequence[str], rng: random.Random) -> str:
    """Cosmetic noise that changes code points, never words."""
    words = text.split(" ")
    for index, word in enumerate(words):
        if len(word) >= 4 and "tatweel" in kinds and rng.random() < 0.08:
            word = _tatweel(word, rng)
        if len(word) >= 3 and "diacritics" in kinds and rng.random() < 0.07:
            word = _diacritize(word, rng)
        if "persian" in kinds and rng.random() < 0.35:
            word = word.replace("ي", "ی").replace("ك", "ک")
        words[index] = word
    sep = [" "] * (len(words) - 1)
    if "nbsp" in kinds:
        sep = ["\u00a0" if rng.random() < 0.12 else s for s in sep]
    out = words[0] + "".join(s + w for s, w in zip(sep, words[1:], strict=False))
    if "digits" in kinds:
        out = out.translate(_PERSIAN_DIGITS if rng.random() < 0.3 else _INDIC)
    return out


def html_block(text: str, kinds: Sequence[str], rng: random.Random, double_escape: bool) -> str:
    """One ``<p>`` of body HTML; with "entities", some characters written as HTML entities (or, on a
    site that escapes twice, as literal entity text the reader sees)."""
    body = html.escape(text, quote=False)
    if "entities" in kinds:
        amp = "&amp;" if double_escape else "&"
        body = body.replace('"', f"{amp}quot;").replace("«", "&laquo;").replace("»", "&raquo;")
        body = "".join(f"&#{ord(c)};" if _ARABIC_LETTER.match(c) and rng.random() < 0.03 else c for c in body)
        body = re.sub(" ", lambda m: "&nbsp;" if rng.random() < 0.05 else " ", body)
    if "crlf" in kinds:
        words = body.split(" ")
        body = "".join(w + ("\r\n" if (i + 1) % 14 == 0 else " ") for i, w in enumerate(words)).rstrip()
    return f"<p>{body}</p>"


# --------------------------------------------------------------------------- the generator

_TAG_NORMALIZE = str.maketrans({"\u0640": None, "أ": "ا", "إ": "ا", "آ": "ا"})


def _fold(text: str) -> str:
    bare = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return bare.translate(_TAG_NORMALIZE)


class _Generator:
    def __init__(self, seed: int, split: str, templates: Templates, sources: SplitSources) -> None:
        self.seed, self.split, self.templates, self.sources = seed, split, templates, sources
        self.rng = random.Random(f"dedup-eval:{seed}:{split}")
        self.outlets = templates.splits[split].outlets
        self.stock = templates.splits[split].stock
        self.items: list[EvalItem] = []
        self._clock = datetime(2017, 11, 6, 4, 0, tzinfo=UTC)
        self._clusters = 0

    # -- pieces ---------------------------------------------------------------

    def _cluster_outlets(self, size: int) -> list[Outlet]:
        """``size`` distinct outlets: the first (for the original) the earliest of them in
        ``self.outlets``, the others in random order."""
        chosen = sorted(self.rng.sample(range(len(self.outlets)), size))
        copies = chosen[1:]
        self.rng.shuffle(copies)
        return [self.outlets[i] for i in [chosen[0]] + copies]

    def _new_cluster(self, letter: str) -> str:
        self._clusters += 1
        self._clock += timedelta(minutes=self.rng.randint(20, 90))
        return f"{self.split}-{letter}{self._clusters:02d}"

    def _headline(self, paragraphs: Sequence[str], avoid: str | None = None) -> str:
        """A headline: the first 6-11 words of one of the first sentences (one not opening with the
        conjunction و when possible), different from ``avoid``."""
        candidates = [s for p in paragraphs[:3] for s in sentences(p) if len(s.split()) >= 6][:4] or list(paragraphs)
        candidates = [s for s in candidates if not s.startswith("و")] or candidates
        for _ in range(20):
            words = self.rng.choice(candidates).split()
            title = " ".join(words[:self.rng.randint(6, 11)]).strip(_PUNCT + " ")
            if title and title != avoid:
                return title
        return " ".join(paragraphs[0].split()[:8])

    def _title(self, outlet: Outlet, headline: str, noise: Sequence[str]) -> str:
        lighter = [k for k in noise if k in ("digits", "persian", "tatweel", "diacritics")]
        return text_noise(self.rng.choice(outlet.headline_prefixes) + headline, lighter, self.rng)

    def _tags(self, outlet: Outlet, text: str) -> str:
        folded = _fold(text)
        tags = [tag for tag, spellings in self.templates.tags.items() if any(_fold(s) in folded for s in spellings)]
        return outlet.tags_prefix + outlet.tags_separator.join(tags[:5] or [self.templates.default_tag])

    def _tail(self, outlet: Outlet, text: str, year: int) -> list[str]:
        pieces = {"share": outlet.share, "show_more": outlet.show_more, "back_to_top": outlet.back_to_top,
                  "source_line": outlet.source_line, "follow_us": outlet.follow_us,
                  "comments_closed": outlet.comments_closed, "copyright": outlet.copyright.format(year=year)}
        return [self._tags(outlet, text) if name == "tags" else pieces[name] for name in outlet.tail]

    def _related(self, outlet: Outlet, cluster: str, quote: bool) -> tuple[str, str | None]:
        """A "related" line: another article's headline (preferably on this outlet) or an evergreen one."""
        others = [i for i in self.items if i.cluster != cluster]
        if quote and others:
            same_site = [i for i in others if i.outlet == outlet.feed]
            target = self.rng.choice(same_site or others)
            return outlet.related_prefix + target.title, target.guid
        return outlet.related_prefix + self.rng.choice(outlet.evergreen), None

    def _emit(self, outlet: Outlet, cluster: str, kind: str, headline: str, blocks: list[str],
              sources: Sequence[str], *, stock: Sequence[int] = (), quotes: str | None = None) -> EvalItem:
        kinds = tuple(k for k in NOISE_KINDS if self.rng.random() < 0.45) or (self.rng.choice(NOISE_KINDS),)
        double = "entities" in kinds and self.rng.random() < 0.25
        body = ("\r\n" if "crlf" in kinds else "\n").join(
            html_block(text_noise(block, kinds, self.rng), kinds, self.rng, double) for block in blocks)
        serial = len(self.items) + 1
        published = self._clock + timedelta(minutes=self.rng.randint(0, 240) if kind not in ORIGINAL_KINDS else 0)
        item = EvalItem(
            outlet=outlet.feed, guid=f"{outlet.host}/{self.split}/{serial:04d}",
            link=f"https://{outlet.host}/news/{self.split}-{serial:04d}.html",
            title=self._title(outlet, headline, kinds),
            body=body, published=published, cluster=cluster, kind=kind, sources=tuple(sources), stock=tuple(stock),
            quotes=quotes, noise=kinds)
        self.items.append(item)
        return item

    def _article(self, outlet: Outlet, cluster: str, kind: str, headline: str, paragraphs: Sequence[str],
                 sources: Sequence[str], *, copy: bool, stock: Sequence[int] = (),
                 background: Sequence[int] = ()) -> EvalItem:
        """An article with ``outlet``'s furniture; a ``copy`` also gets related lines (one quoting
        another article's headline when possible), a byline and a dateline. ``background`` stock
        sentences are appended; ``stock`` names those the paragraphs already carry."""
        body = list(paragraphs)
        quoted = None
        if copy:
            body[0] = self._dateline(outlet) + body[0]
            spots = [1, 3] if len(body) >= 4 else [1] if len(body) >= 2 else []
            for n, spot in enumerate(reversed(spots)):
                line, target = self._related(outlet, cluster, quote=(n == 0 and self.rng.random() < 0.7))
                quoted = quoted or target
                body.insert(spot, line)
            body.insert(0, outlet.byline.format(author=self.rng.choice(outlet.authors)))
        elif len(body) >= 3 and self.rng.random() < 0.5:
            body.insert(2, self._related(outlet, cluster, quote=False)[0])
        body += [self.stock[i] for i in background]
        body += self._tail(outlet, " ".join(paragraphs), 2017)
        if outlet.footer_everywhere:
            body.append(outlet.footer)
        return self._emit(outlet, cluster, kind, headline, body, sources, stock=tuple(stock) + tuple(background),
                          quotes=quoted)

    def _dateline(self, outlet: Outlet) -> str:
        return outlet.dateline.format(place=self.rng.choice(self.templates.places))

    def _edited(self, paragraphs: Sequence[str]) -> list[str]:
        """Paragraphs reordered (sentences, for a one-paragraph text) and ~5 % of the words edited."""
        parts = list(paragraphs) if len(paragraphs) >= 2 else sentences(paragraphs[0])
        order = list(range(len(parts)))
        while len(parts) >= 2 and order == sorted(order):
            self.rng.shuffle(order)
        edited = [edit_words(parts[i], EDIT_RATE, self.rng, self.templates.edits)[0] for i in order]
        return edited if len(paragraphs) >= 2 else [" ".join(edited)]

    # -- clusters -------------------------------------------------------------

    def long_cluster(self, source: Source) -> None:
        cluster = self._new_cluster("L")
        paragraphs = list(source.paragraphs)
        headline = source.headline or self._headline(paragraphs)
        original, republished, dropped, edited, excerpted = self._cluster_outlets(5)
        self._article(original, cluster, "original", headline, paragraphs, source.units, copy=False)
        background = [self.rng.randrange(len(self.stock))] if self.rng.random() < 0.5 else []
        self._article(republished, cluster, "republished", self._headline(paragraphs, headline), paragraphs,
                      source.units, copy=True, background=background)
        drop = self.rng.randrange(1, len(paragraphs))
        self._article(dropped, cluster, "dropped", self._headline(paragraphs, headline),
                      paragraphs[:drop] + paragraphs[drop + 1:], source.units, copy=True)
        self._article(edited, cluster, "edited", self._headline(paragraphs, headline), self._edited(paragraphs),
                      source.units, copy=False)
        self._emit(excerpted, cluster, "excerpt", self._headline(paragraphs, headline),
                   excerpt(paragraphs, EXCERPT_SHARE, excerpted.truncation), source.units)

    def brief_cluster(self, source: Source, edited: bool) -> None:
        """A brief under its site's footer on two outlets (three with an ``edited`` copy)."""
        cluster = self._new_cluster("B")
        words: list[str] = []
        for sentence in (s for p in source.paragraphs for s in sentences(p)):
            if len(words) >= BRIEF_WORDS - 10:
                break
            words += sentence.split()
        if len(words) > BRIEF_WORDS + 15:
            words = words[:BRIEF_WORDS]
            words[-1] = words[-1].rstrip(_PUNCT) + "."
        brief = " ".join(words)
        headline = source.headline or self._headline([brief])
        outlets = self._cluster_outlets(3 if edited else 2)
        self._emit(outlets[0], cluster, "brief_original", headline, [brief, outlets[0].footer], source.units)
        self._emit(outlets[1], cluster, "brief", self._headline([brief], headline),
                   [self._dateline(outlets[1]) + brief, outlets[1].footer], source.units)
        if len(outlets) == 3:
            text = edit_words(brief, EDIT_RATE, self.rng, self.templates.edits)[0]
            self._emit(outlets[2], cluster, "brief_edited", self._headline([brief], headline),
                       [text, outlets[2].footer], source.units)

    def front_clusters(self) -> None:
        """Distinct articles on the same front: 40-75 words of sentences from at least two corpus
        articles, plus two whole stock sentences; every other one is republished once."""
        queues = [[(piece, src.units[i]) for i, p in enumerate(src.paragraphs) for s in sentences(p)
                   for piece in clauses(s) if len(piece.split()) >= 6] for src in self.sources.pool]
        for queue in queues:
            self.rng.shuffle(queue)
        republish = self.rng.randrange(2)
        while len(live := [q for q in queues if q]) >= 2:
            picked: list[tuple[str, str]] = []  # (sentence, unit), taken from the articles in turn
            turn = self.rng.randrange(len(live))
            while live:
                picked.append(live[turn % len(live)].pop())
                live, turn = [q for q in queues if q], turn + 1
                words = sum(len(s.split()) for s, _ in picked)
                articles = {unit.split("#")[0] for _, unit in picked}
                if words > FRONT_WORDS[1] or (words >= FRONT_WORDS[0] and len(articles) >= 2):
                    break
            stock = sorted(self.rng.sample(range(len(self.stock)), 2))
            text = [s for s, _ in picked]
            middle = max(1, len(text) // 2)
            paragraphs = [" ".join(text[:middle]), " ".join(text[middle:] + [self.stock[stock[0]]]),
                          self.stock[stock[1]]]
            paragraphs = [p for p in paragraphs if p]
            units = sorted({u for _, u in picked})
            cluster = self._new_cluster("F")
            republish += 1
            outlets = self._cluster_outlets(1 + republish % 2)
            headline = self._headline(paragraphs)
            self._article(outlets[0], cluster, "front", headline, paragraphs, units, copy=False, stock=stock)
            if len(outlets) == 2:
                self._article(outlets[1], cluster, "front_copy", self._headline(paragraphs, headline), paragraphs,
                              units, copy=True, stock=stock)

    # -- pairs ----------------------------------------------------------------

    def pairs(self) -> tuple[tuple[Pair, ...], tuple[Pair, ...]]:
        duplicates: list[Pair] = []
        by_cluster: dict[str, list[EvalItem]] = {}
        for item in self.items:
            by_cluster.setdefault(item.cluster, []).append(item)
        for members in by_cluster.values():
            for a, b in combinations(members, 2):
                duplicates.append(Pair(a.guid, b.guid, _duplicate_kind(a, b)))
        candidates: dict[str, list[Pair]] = {kind: [] for kind in DISTINCT_PAIR_KINDS}
        corpus_origins = {s.origin for s in self.sources.pool}
        from_corpus = {i.guid for i in self.items if i.kind in ("front", "front_copy")
                       or any(u.split("#")[0] in corpus_origins for u in i.sources)}
        for a, b in combinations(self.items, 2):
            if a.cluster == b.cluster:
                continue
            if a.quotes == b.guid or b.quotes == a.guid:
                kind = "quoted_headline"
            elif a.outlet == b.outlet and a.kind.startswith("brief") and b.kind.startswith("brief"):
                kind = "same_footer"
            elif set(a.stock) & set(b.stock):
                kind = "shared_stock"
            elif a.guid in from_corpus and b.guid in from_corpus:
                kind = "same_front"
            elif a.outlet == b.outlet:
                kind = "same_outlet"
            else:
                kind = "other"
            candidates[kind].append(Pair(a.guid, b.guid, kind))
        distinct: list[Pair] = []
        for kind in DISTINCT_PAIR_KINDS:
            found = candidates[kind]
            limit = DISTINCT_SAMPLES.get(kind)
            distinct += found if limit is None or len(found) <= limit else self.rng.sample(found, limit)
        return tuple(duplicates), tuple(distinct)


def _duplicate_kind(a: EvalItem, b: EvalItem) -> str:
    if a.kind in ORIGINAL_KINDS:
        return b.kind
    if b.kind in ORIGINAL_KINDS:
        return a.kind
    both = {a.kind, b.kind}
    if both == {"excerpt", "dropped"}:
        return "excerpt_vs_dropped"
    if both == {"brief", "brief_edited"}:
        return "brief_vs_edited"
    return "copy_vs_copy"


def generate(seed: int = DEFAULT_SEED, split: str = "dev", *, real_news: str | Path | None = None,
             corpus_dir: Path = CORPUS_DIR, templates: Templates | None = None) -> EvalSet:
    """The evaluation set of ``split`` for ``seed``: the same arguments give the same set. Writes nothing."""
    sources = load_sources(split, find_real_news(real_news), corpus_dir)
    gen = _Generator(seed, split, templates or load_templates(), sources)
    for source in sources.long:
        gen.long_cluster(source)
    gen.front_clusters()
    edited = set(gen.rng.sample(range(len(sources.briefs)), round(BRIEF_EDITED_SHARE * len(sources.briefs))))
    for index, source in enumerate(sources.briefs):
        gen.brief_cluster(source, edited=index in edited)
    duplicates, distinct = gen.pairs()
    return EvalSet(seed, split, gen.outlets, gen.stock, tuple(gen.items), duplicates, distinct)


def iter_splits(choice: str) -> Iterator[str]:
    """``dev``, ``heldout`` or ``both`` -> the split names."""
    if choice == "both":
        yield from SPLITS
    elif choice in SPLITS:
        yield choice
    else:
        raise ValueError(f"unknown split {choice!r} (dev, heldout or both)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("out", nargs="?", type=Path, help="folder to write into (default: a new temporary folder)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--split", choices=("dev", "heldout", "both"), default="both")
    parser.add_argument("--real-news", type=Path, help=f"real-news dev.jsonl (default: ${REAL_NEWS_ENV} or "
                                                       "../shared/corpora/real-news/dev.jsonl)")
    parser.add_argument("--corpus", type=Path, default=CORPUS_DIR, help="folder of the corpus articles")
    args = parser.parse_args(argv)
    out: Path = args.out or Path(tempfile.mkdtemp(prefix="dedup-eval-"))
    try:
        for split in iter_splits(args.split):
            eval_set = generate(args.seed, split, real_news=args.real_news, corpus_dir=args.corpus)
            eval_set.write(out / split)
            print(f"{split}: {len(eval_set.items)} items, {len(eval_set.clusters())} clusters, "
                  f"{len(eval_set.duplicate_pairs)} duplicate pairs, {len(eval_set.distinct_pairs)} distinct pairs "
                  f"-> {out / split}")
    except SourceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
