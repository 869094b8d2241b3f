"""Dedup stage: fold every item into a *story* (one event, many outlets).

Why stories: the same article reaches the user from many feeds, many polls and many edits;
alerts are keyed on (story, rule), so folding duplicates into one story is what keeps the
user from getting the same alert twice.

Order of checks (cheapest and surest first):

1. the item's own key (guid / canonical link / hash) was seen -> its story (a re-poll or an
   edit of the same item);
2. the canonical link is already in a live story (another feed, same URL);
3. the hash of the normalized text matches a live story;
4. the item's *content* (its sentences without the site's learned furniture,
   ``monitor.stories.furniture``) is contained in a member of a live story or contains one
   (``monitor.stories.cluster``): candidates are the members sharing LSH band keys with it
   and the stories carrying the end of one of its sentences word for word (both indexed tables),
   verified on the stored shingles. Matching members of several stories merges them;
5. otherwise a new story.

Everything is read from and written to the state database inside the caller's transaction:
nothing lives in this process's memory, so a rollback leaves nothing behind and several
daemon instances on one database see each other's stories at once. "Live" means updated
within ``window_hours``; the index forgets members of stories that are no longer live.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from monitor.state import stories as state_stories
from monitor.state.db import Database
from monitor.stories.settings import DedupSettings
from monitor.types import Item

if TYPE_CHECKING:  # numpy (and the modules using it) load with the first StoryIndex, not with config/CLI
    from monitor.stories.cluster import Content, Decision
    from monitor.stories.fingerprint import Permutations
    from monitor.stories.key import DedupKey

__all__ = ["DedupSettings", "StoryAssignment", "StoryIndex"]

#: Members a candidate query verifies at most (the most band keys shared first).
MAX_CANDIDATES = 32
#: Members verified per story found through a shared sentence (the newest).
MEMBERS_PER_STORY = 8
#: A sentence more live stories than this carry is stock text, not a way to find candidates.
MOST_CARRIERS = 8
#: Shingles an item must share with a member, whatever the containment (short texts).
MIN_SHARED = 6
#: An item whose content the member it matched already holds to this share is not stored as a
#: member itself: whatever finds it finds that member (an excerpt, a republished copy).
COVERED = 0.9
#: Every this many assignments, forget a bounded amount of what is no longer live.
PRUNE_EVERY = 500
PRUNE_BATCH = 1000


@dataclass(frozen=True)
class StoryAssignment:
    """Which story an item belongs to and why (``reason``: 'exact', 'near' or 'new').

    ``new_source`` is False when the item itself was already part of the story (a re-poll or
    an edit of the same guid/link): routing then neither adds a source nor sends a follow-up.
    ``merged_from`` lists the stories this item showed to be the same as ``story_id``: they
    were folded into it (items, sources, alerts and their deliveries now point here), so
    routing keeps one thread.
    """

    story_id: int
    new_story: bool
    reason: str
    similarity: float | None = None
    new_source: bool = True
    merged_from: tuple[int, ...] = ()


class StoryIndex:
    """Assigns items to stories through the state database.

    ``assign(db, item, now)`` runs inside the transaction that also records the item. ``load``
    at startup forgets what expired while the daemon was down.
    """

    def __init__(self, settings: DedupSettings | None = None) -> None:
        from monitor.stories.fingerprint import permutations

        self.settings = settings or DedupSettings()
        self._perm = permutations(self.settings.num_perm)
        self._assigns = 0

    @property
    def window(self) -> float:
        return self.settings.window_hours * 3600.0

    @property
    def permutations(self) -> Permutations:
        """The MinHash permutations (for ``dedup_key`` in worker processes)."""
        return self._perm

    def load(self, db: Database, now: float) -> int:
        """Forget the members of stories that expired; returns the number of live stories."""
        with db.transaction():
            while self._prune(db, now) >= PRUNE_BATCH:
                pass
            return state_stories.live_count(db, now - self.window)

    def _prune(self, db: Database, now: float) -> int:
        from monitor.stories.furniture import forget

        forget(db, now, PRUNE_BATCH)
        return state_stories.prune_index(db, now - self.window, PRUNE_BATCH)

    def key(self, item: Item) -> DedupKey:
        """The item's key alone (``dedup_keys`` of its whole poll also learns furniture from it)."""
        from monitor.stories.key import dedup_key

        return dedup_key(item, self.settings, self._perm)

    def assign(self, db: Database, item: Item, now: float, key: DedupKey | None = None) -> StoryAssignment:
        """Find or create the item's story and record the item in it (no commit).

        ``key`` may come precomputed (``dedup_keys`` in a worker process); it is computed
        here when missing.
        """
        import numpy as np

        from monitor.stories.cluster import content_of
        from monitor.stories.furniture import furniture_mask

        self._assigns += 1
        if self._assigns % PRUNE_EVERY == 0:
            self._prune(db, now)
        cutoff = now - self.window
        key = key or self.key(item)
        fp = key.fingerprint
        exact = state_stories.exact_match(db, item.key, key.link, fp.text_hash, cutoff)
        if exact.own is not None:
            state_stories.touch(db, exact.own, now)
            return StoryAssignment(exact.own, False, "exact", None, new_source=False)

        furniture, known = furniture_mask(db, item.feed, key)
        content = key.content if np.array_equal(np.flatnonzero(~furniture), key.content.kept) else content_of(
            fp, key.signatures, furniture)
        story_id = exact.by_link if exact.by_link is not None else exact.by_text
        decision, carriers = None, dict[int, set[int]]()
        if story_id is None and content.words >= self.settings.min_words:
            decision = self._near(db, item.feed, content, cutoff, carriers)
        if decision is not None and decision.story_id is not None:
            story_id = decision.story_id
            state_stories.merge(db, story_id, decision.merged)
        new_story = story_id is None
        if story_id is None:
            story_id = state_stories.create(db, now=now, text_hash=fp.text_hash, title=item.title,
                                            shingles=len(content.shingles))
        state_stories.add_item(db, story_id, item_key=item.key, feed=item.feed, link=key.link, title=item.title,
                               now=now, new_story=new_story)
        self._record(db, item, key, content, known, story_id, now, decision, carriers)
        if new_story:
            return StoryAssignment(story_id, True, "new")
        if decision is None or decision.story_id is None:
            return StoryAssignment(story_id, False, "exact")
        return StoryAssignment(story_id, False, "near", decision.similarity, merged_from=decision.merged)

    def _near(self, db: Database, feed: str, content: Content, cutoff: float,
              carriers: dict[int, set[int]]) -> Decision | None:
        """Candidates by two ways, both from the database: members sharing LSH bands with the
        content (edited copies), and stories carrying one of its sentences word for word
        (copies, excerpts); then ``decide``."""
        import numpy as np

        from monitor.stories.cluster import Candidate, decide

        members = state_stories.candidate_members(db, content.bands,
                                                  min_hits=self.settings.band_hits, cutoff=cutoff,
                                                  limit=MAX_CANDIDATES)
        hashes = sorted({h for _, h in content.stock_candidates})
        found_carriers, widespread = state_stories.stories_with_sentences(db, hashes, MOST_CARRIERS)
        carriers.update(found_carriers)
        found = {m.story_id for m in members}
        by_sentence = sorted({s for stories in carriers.values() for s in stories} - found, reverse=True)
        members += state_stories.members_of_stories(db, by_sentence[:MAX_CANDIDATES], cutoff, MEMBERS_PER_STORY)
        if not members:
            return None
        candidates = [Candidate(m.story_id, m.feed, np.frombuffer(m.shingles, dtype=np.uint32),
                                np.frombuffer(m.sentences, dtype=np.int64)) for m in members]
        return decide(content, feed, candidates, carriers, widespread, threshold=self.settings.threshold,
                      min_shared=MIN_SHARED)

    def _record(self, db: Database, item: Item, key: DedupKey, content: Content, known: dict[int, float],
                story_id: int, now: float, decision: Decision | None, carriers: dict[int, set[int]]) -> None:
        """Remember the furniture the item showed; store its content as a member (unless it is
        too short, or the member it matched already holds it) and the sentences the story did
        not carry yet (``carriers``: what the candidate lookup found)."""
        from monitor.stories.furniture import remember

        remember(db, item.feed, key, known, now, decision.furniture if decision is not None else frozenset())
        if content.signature is None or content.words < self.settings.min_words:
            return
        if decision is not None and decision.story_id is not None and decision.covered >= COVERED:
            return
        sentences = content.fingerprint.hashes[content.kept]
        state_stories.add_member(db, story_id=story_id, item_key=item.key, feed=item.feed, now=now,
                                 shingles=content.shingles.tobytes(), sentences=sentences.tobytes(),
                                 band_keys=content.bands)
        state_stories.add_story_sentences(db, story_id, sorted(
            {h for _, h in content.stock_candidates if story_id not in carriers.get(h, ())}))
