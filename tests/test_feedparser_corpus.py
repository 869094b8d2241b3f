"""Every one of feedparser's 2,107 test feeds goes through parse_feed: items or ParseError, nothing else.

Headers named in each file's ``Header:`` comment lines are passed as response
headers, as feedparser's own suite does. Skips when the shared corpus is absent.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from monitor.errors import ParseError
from monitor.feeds.parse import parse_feed

CORPUS = Path("/work/shared/corpora/feedparser-tests")
HEADER = re.compile(rb"^\s*Header:\s*([A-Za-z-]+):\s*(.*?)\s*$", re.M)


def corpus_files() -> list[Path]:
    if not CORPUS.is_dir():
        return []
    return sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.name != "LICENSE")


def headers_of(body: bytes) -> dict[str, str]:
    head = body[:2000]
    return {m.group(1).decode("ascii").lower(): m.group(2).decode("latin-1") for m in HEADER.finditer(head)}


@pytest.mark.skipif(not CORPUS.is_dir(), reason="shared feedparser corpus not present")
def test_whole_feedparser_corpus_parses_or_raises_parse_error():
    files = corpus_files()
    assert len(files) > 2000
    outcomes: Counter[str] = Counter()
    unexpected: list[str] = []
    for path in files:
        body = path.read_bytes()
        try:
            feed = parse_feed(body, headers_of(body), url=f"http://127.0.0.1/{path.name}", feed_name=path.stem)
        except ParseError as exc:
            outcomes[exc.kind] += 1
            continue
        except Exception as exc:  # noqa: BLE001 - the assertion below reports them all at once
            unexpected.append(f"{path.relative_to(CORPUS)}: {type(exc).__name__}: {exc}")
            continue
        outcomes["ok"] += 1
        for item in feed.items:
            assert item.key and item.key.split(":", 1)[0] in ("guid", "link", "hash")
            assert item.link is None or item.link.startswith(("http://", "https://"))
            assert item.published is None or item.published.tzinfo is not None
    assert unexpected == []
    # Most of the suite is well-formed feeds: a regression that rejects them shows here.
    assert outcomes["ok"] > 1500, outcomes
    # The entities/ folder uses HTML entities, not declarations: still accepted.
    assert outcomes["entities"] < 50, outcomes
