"""Article links: which ones are kept, how they are shown, and when two are the same article.

Two forms, one set of rules:

* ``clean_link`` is the link as it is shown and keyed (``Item.link``, the
  ``link:`` item key): tracking parameters and the fragment removed, scheme
  and host lower-cased, the default port dropped; otherwise as the feed wrote
  it, so it still opens the page.
* ``canonical_url`` is the link's identity for story dedup: the clean link in
  w3lib's canonical form (query sorted, percent-encoding normalised), with
  ``http``/``https``, a leading ``www.`` and a trailing slash folded, so two
  outlets linking to one article by slightly different URLs meet in one story.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from w3lib.url import canonicalize_url

__all__ = ["http_link", "clean_link", "canonical_url"]

# Query parameters that only track the reader. Deliberately narrow: some news
# CMSs use ``cid``/``source``/``id``/``ref`` for the article itself, and collapsing
# two articles onto one key would lose an alert.
_TRACKING_PARAM = re.compile(
    r"^(?:utm_[a-z_]*|fbclid|gclid|dclid|gbraid|wbraid|msclkid|yclid|twclid|igshid|"
    r"mc_cid|mc_eid|_ga|_gl|_hsenc|_hsmi|mkt_tok|ocid|cmpid|at_medium|at_campaign|"
    r"ref_src|ref_url|rss|from_rss|feed_id|xtor)$",
    re.I,
)


def http_link(value: object, base: str | None = None) -> str | None:
    """The absolute http(s) URL, or None (javascript:, data:, mailto: ... are dropped)."""
    if not value or not isinstance(value, str):
        return None
    link = value.strip()
    if base:
        try:
            link = urljoin(base, link)
        except ValueError:
            return None
    try:
        parts = urlsplit(link)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return link


def clean_link(url: str) -> str:
    """The link without tracking parameters and fragment, host lower-cased, default port dropped."""
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


def canonical_url(url: str | None) -> str | None:
    """The identity of an article link (None for no link); see the module docstring."""
    if not url:
        return None
    cleaned = clean_link(url)
    try:
        parts = urlsplit(canonicalize_url(cleaned))
    except ValueError:
        return cleaned
    if not parts.netloc:
        return cleaned
    host = parts.netloc.removeprefix("www.")
    return urlunsplit(("https", host, parts.path.rstrip("/") or "/", parts.query, ""))
