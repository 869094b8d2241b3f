"""Article pages -> text, for feeds that carry only headlines (``full_text: true``)."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

__all__ = ["extract_article"]


def extract_article(html: bytes, url: str) -> str | None:
    """Main text of an article page (trafilatura), or None if nothing usable was found."""
    if not html:
        return None
    try:
        import trafilatura  # imported lazily: only feeds with full-text fetch need it

        text = trafilatura.extract(html, url=url, include_comments=False, include_tables=False,
                                   favor_precision=True, deduplicate=True)
    except Exception as exc:  # noqa: BLE001 - trafilatura on hostile HTML must not take the poll down
        log.warning("article extraction failed for %s: %s", url, type(exc).__name__)
        return None
    if not text:
        return None
    text = " ".join(text.split())
    return text or None
