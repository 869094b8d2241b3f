"""Dedup methods as the micro-benchmark drives them, so a new method can be measured beside the
current one in the same run: add a class with the ``DedupMethod`` shape to ``METHODS``.

A method has three parts, measured separately:

* ``key(item)``: the per-item work that needs no stored state (normalize, shingle, sketch), which
  the daemon runs in a worker process, for all new items of a feed poll at once (``keys(items)``);
* ``story_store(folder)``: the stateful part the daemon runs in its write transaction (one per
  feed poll, ``batch()``): ``assign(item, key)`` folds one item into a story, returns its id;
* ``store.candidates(key)``: the candidate lookup alone, against what the store holds (the step
  that must stay cheap at 100,000 stored stories).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol

from dedup_eval.baseline import WholeTextKey, WholeTextStories, whole_text_key
from monitor.state import open_state
from monitor.state import stories as state_stories
from monitor.stories.index import StoryIndex
from monitor.stories.key import DedupKey, dedup_key, dedup_keys
from monitor.stories.settings import DedupSettings
from monitor.types import Item

NOW = 1.5e9


class StoryStore(Protocol):
    def add(self, items: Iterable[tuple[Item, Any]]) -> None:
        """Fold many items (committed); how the benchmark fills the store."""

    def batch(self) -> AbstractContextManager[None]:
        """One write transaction, as the daemon holds for all new items of one feed poll."""

    def assign(self, item: Item, key: Any) -> int:
        """Fold one item into a story (inside ``batch()``); the story id."""

    def candidates(self, key: Any) -> Collection[Any]:
        """The candidate lookup alone (what a query returns before verification)."""

    def close(self) -> None: ...


class DedupMethod(Protocol):
    name: str

    def key(self, item: Item) -> Any: ...

    def keys(self, items: Sequence[Item]) -> list[Any]:
        """The keys of one feed poll's new items (what a worker computes for the poll)."""

    def story_store(self, folder: Path) -> StoryStore: ...


class _Store:
    """A real state database and one assign function, each batch in the daemon's kind of transaction."""

    def __init__(self, folder: Path, assign: Callable[[Any, Item, float, Any], int]) -> None:
        self.db = open_state(folder / "state.sqlite3")
        self._assign = assign

    def add(self, items: Iterable[tuple[Item, Any]], batch: int = 2000) -> None:
        pending: list[tuple[Item, Any]] = []
        for entry in items:
            pending.append(entry)
            if len(pending) == batch:
                self._commit(pending)
                pending = []
        self._commit(pending)

    def _commit(self, entries: list[tuple[Item, Any]]) -> None:
        with self.batch():
            for item, key in entries:
                self.assign(item, key)

    @contextmanager
    def batch(self) -> Iterator[None]:
        with self.db.transaction():
            yield

    def assign(self, item: Item, key: Any) -> int:
        return self._assign(self.db, item, NOW, key)

    def close(self) -> None:
        self.db.close()


class WholeTextMinHash:
    """The dedup before issue 13: MinHash of the whole text, in-memory LSH at Jaccard 0.4
    (frozen in ``dedup_eval.baseline``)."""

    name = "whole-text MinHash (before)"

    def key(self, item: Item) -> WholeTextKey:
        return whole_text_key(item)

    def keys(self, items: Sequence[Item]) -> list[Any]:
        return [whole_text_key(item) for item in items]

    def story_store(self, folder: Path) -> StoryStore:
        stories = WholeTextStories()

        class Store(_Store):
            def candidates(self, key: WholeTextKey) -> Collection[Any]:
                return stories.lsh.query(key.signature) if key.signature is not None else ()

        return Store(folder, stories.assign)


class SentenceContainment:
    """Today's dedup (``monitor.stories``): content without learned furniture, containment, clusters,
    candidates from the LSH band keys in the state database."""

    name = "sentence containment, index in the database (after)"

    def __init__(self, settings: DedupSettings | None = None) -> None:
        self.index = StoryIndex(settings or DedupSettings())

    def key(self, item: Item) -> DedupKey:
        return dedup_key(item, self.index.settings, self.index.permutations)

    def keys(self, items: Sequence[Item]) -> list[Any]:
        """With the furniture the poll's items repeat, as ``monitor.ingest.analysis``."""
        return list(dedup_keys(items, [True] * len(items), self.index.settings, self.index.permutations))

    def story_store(self, folder: Path) -> StoryStore:
        index = self.index

        class Store(_Store):
            def candidates(self, key: DedupKey) -> Collection[Any]:
                return state_stories.candidate_members(self.db, key.content.bands, min_hits=index.settings.band_hits,
                                                       cutoff=NOW - index.window, limit=32)

        return Store(folder, lambda db, item, now, key: index.assign(db, item, now, key).story_id)


METHODS: tuple[Callable[[], DedupMethod], ...] = (WholeTextMinHash, SentenceContainment)
