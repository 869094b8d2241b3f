"""Feeds: getting a feed's items, safely.

    settings.py   each feed, polling defaults, the ``fetch:`` section (no network code)
    fetch.py      one bounded HTTP GET (size cap on the raw stream, total time limit, redirects)
    parse.py      feed bytes -> ``Item``s (feedparser on BytesIO, plain text, http(s) links only)
    itemcap.py    a feed over the item cap cut to its newest entries before feedparser
    encodings.py  decoding Arabic feeds right; entity declarations refused
    links.py      link cleaning and the canonical URL of an article
    article.py    article pages -> text for headline-only feeds
    schedule.py   when to poll a feed next (pure)
    opml.py       importing feed lists

May import: ``monitor.types``, ``monitor.errors``, ``monitor.text`` (normalization for item keys).
"""
