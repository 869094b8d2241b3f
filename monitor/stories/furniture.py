"""Site furniture learned from repetition, kept in the state database.

A sentence is a site's furniture (footer, share bar, "follow us", a stock paragraph the site
appends) when the site's items repeat it while the rest of them differs. Two things see the
repetition, and what they learn is stored in ``feed_sentences`` (``monitor.state.stories``),
so it survives restarts and every daemon instance on the database learns from every other's
polls:

* a poll's own items vote (``monitor.stories.key.batch_repeats``): a site's furniture is known
  from its first feed document, before any item of it is stored;
* an item compared with a stored item of its own feed (``monitor.stories.cluster``): sentences
  the two share word for word while the rest of each is unrelated (two briefs under one
  footer arriving in two polls).

Sentences many unrelated stories of any feed carry are stock text (``cluster``), through
``story_sentences``.

Cost per item: one indexed lookup of its sentence hashes; a write only for furniture learned
now, or seen again after a day. Size: a few rows per feed's furniture sentence, forgotten
after ``REMEMBER_DAYS`` unseen.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from monitor.state import stories as state_stories
from monitor.state.db import Database
from monitor.stories.key import DedupKey

__all__ = ["furniture_mask", "remember", "forget", "REMEMBER_DAYS", "REFRESH_SECONDS"]

#: Furniture not seen for this long is forgotten (a site redesign leaves old footers behind).
REMEMBER_DAYS = 30.0
#: When furniture is seen again, its "last seen" is moved on at most this often.
REFRESH_SECONDS = 86400.0


def furniture_mask(db: Database, feed: str, key: DedupKey) -> tuple[NDArray[np.bool_], dict[int, float]]:
    """Per sentence of the item: is it this feed's furniture (learned earlier, or repeated by its
    poll)? And when each known furniture sentence was last seen (for ``remember``)."""
    hashes = key.fingerprint.hashes.tolist()
    known = state_stories.feed_furniture(db, feed, sorted(set(hashes)))
    if known.keys() <= key.furniture:
        return key.furniture_mask(), known
    return np.array([h in key.furniture or h in known for h in hashes], dtype=np.bool_), known


def remember(db: Database, feed: str, key: DedupKey, known: dict[int, float], now: float,
             learned: frozenset[int] = frozenset()) -> None:
    """Store the item's furniture: what its poll voted, what comparing it with another item of
    its feed showed (``learned``), and known furniture seen again after a day."""
    found = key.furniture | learned | known.keys()
    rows = [h for h in found if now - known.get(h, 0.0) > REFRESH_SECONDS]
    if rows:
        state_stories.remember_furniture(db, feed, rows, now)


def forget(db: Database, now: float, limit: int) -> int:
    """Drop furniture not seen for ``REMEMBER_DAYS`` (bounded work per call); returns rows dropped."""
    return state_stories.forget_furniture(db, before=now - REMEMBER_DAYS * 86400.0, limit=limit)
