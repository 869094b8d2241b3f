"""Site furniture learned from repetition, kept in the state database.

A sentence is a site's furniture (footer, share bar, "follow us", a stock paragraph the site
appends) when the site's items carry it in many different stories: ``furniture_items`` of
them by default. The count lives in ``feed_sentences`` (``monitor.state.stories``), so it
survives restarts and every daemon instance on the database learns from every other's
polls. A poll's own items vote first (``monitor.stories.key.batch_repeats``): the furniture of
a site is known from its first feed document, before any count is stored, and is stored at
once as furniture.

Cost per item: one indexed lookup of its sentence hashes and one upsert per distinct sentence.
Size: counts below the furniture level are forgotten once older than the story window,
others after ``REMEMBER_DAYS`` without being seen.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from monitor.state import stories as state_stories
from monitor.state.db import Database
from monitor.stories.key import DedupKey
from monitor.stories.settings import DedupSettings

__all__ = ["furniture_mask", "count_sentences", "forget", "REMEMBER_DAYS"]

#: Furniture not seen for this long is forgotten (a site redesign leaves old footers behind).
REMEMBER_DAYS = 30.0


def furniture_mask(db: Database, feed: str, key: DedupKey, settings: DedupSettings) -> NDArray[np.bool_]:
    """Per sentence of the item: is it this feed's furniture (learned earlier, or repeated by its poll)?"""
    hashes = key.fingerprint.hashes.tolist()
    counts = state_stories.feed_sentence_counts(db, feed, sorted(set(hashes)))
    least = settings.furniture_items
    return np.array([h in key.furniture or counts.get(h, 0) >= least for h in hashes], dtype=np.bool_)


def count_sentences(db: Database, feed: str, story_id: int, key: DedupKey, settings: DedupSettings,
                    now: float, learned: frozenset[int] = frozenset()) -> None:
    """Count the item's sentences for its feed; those its poll repeated, and those ``learned``
    by comparing it with another item of its feed, count as furniture at once."""
    least = settings.furniture_items
    counts = {h: (least if h in key.furniture or h in learned else 1) for h in key.fingerprint.hashes.tolist()}
    state_stories.count_feed_sentences(db, feed, story_id, counts, now)


def forget(db: Database, now: float, settings: DedupSettings, limit: int) -> int:
    """Drop counts that no longer matter (bounded work per call); returns rows dropped."""
    return state_stories.prune_feed_sentences(
        db, singles_before=now - settings.window_hours * 3600.0, before=now - REMEMBER_DAYS * 86400.0,
        furniture=settings.furniture_items, limit=limit)
