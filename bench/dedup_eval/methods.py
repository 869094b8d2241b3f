"""Dedup methods as the micro-benchmark drives them, so a new method can be measured beside the
current one in the same run: add a class with the ``DedupMethod`` shape to ``METHODS``.

A method has three parts, measured separately:

* ``key(item)``: the per-item work that needs no stored state (normalize, shingle, sketch), which
  the daemon runs in a worker process;
* ``candidate_index(keys)``: an index over stored keys whose ``query(key)`` returns the candidate
  stories (the step that must stay cheap at 100,000 stored stories);
* ``story_store(folder)``: the stateful part the daemon runs in its write transaction (one per
  feed poll, ``batch()``): ``assign(item, key)`` folds one item into a story, returns its id.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol

from monitor.state.db import open_state, transaction
from monitor.stories.index import DedupKey, DedupSettings, StoryIndex, dedup_key
from monitor.types import Item


class CandidateIndex(Protocol):
    def query(self, key: Any) -> Collection[Any]: ...


class StoryStore(Protocol):
    def add(self, items: Iterable[tuple[Item, Any]]) -> None:
        """Fold many items (committed); how the benchmark fills the store."""

    def batch(self) -> AbstractContextManager[None]:
        """One write transaction, as the daemon holds for all new items of one feed poll."""

    def assign(self, item: Item, key: Any) -> int:
        """Fold one item into a story (inside ``batch()``); the story id."""

    def close(self) -> None: ...


class DedupMethod(Protocol):
    name: str

    def key(self, item: Item) -> Any: ...

    def candidate_index(self, keys: Iterable[Any]) -> CandidateIndex: ...

    def story_store(self, folder: Path) -> StoryStore: ...


class _MinHashCandidates:
    """datasketch's ``MinHashLSH`` with the daemon's threshold and permutations, through its public
    API (``StoryIndex`` queries a faster mirror of the same band tables)."""

    def __init__(self, settings: DedupSettings, keys: Iterable[DedupKey]) -> None:
        from datasketch import LeanMinHash, MinHashLSH

        self._lean = LeanMinHash
        self._lsh = MinHashLSH(threshold=settings.threshold, num_perm=settings.num_perm)
        with self._lsh.insertion_session() as session:
            for index, key in enumerate(keys):
                if key.signature is not None:
                    session.insert(index, self._minhash(key), check_duplication=False)

    def _minhash(self, key: DedupKey) -> Any:
        return self._lean(seed=1, hashvalues=key.signature, scheme="affine32")

    def query(self, key: DedupKey) -> Collection[Any]:
        if key.signature is None:
            return ()
        found: list[Any] = self._lsh.query(self._minhash(key))
        return found


class _StoryIndexStore:
    """``StoryIndex`` over a real state database, each assignment in the daemon's kind of transaction."""

    def __init__(self, settings: DedupSettings, folder: Path, now: float) -> None:
        self._conn: sqlite3.Connection = open_state(folder / "state.sqlite3")
        self._index = StoryIndex(settings)
        self._index.load(self._conn, now)
        self._now = now

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
        with transaction(self._conn):
            yield

    def assign(self, item: Item, key: Any) -> int:
        return self._index.assign(self._conn, item, self._now, key).story_id

    def close(self) -> None:
        self._conn.close()


class WholeTextMinHash:
    """Today's dedup: MinHash of the whole text's word 3-gram shingles, LSH at Jaccard 0.4
    (``monitor.stories.index``)."""

    name = "whole-text MinHash (current)"

    def __init__(self, settings: DedupSettings | None = None, now: float = 1.5e9) -> None:
        self.settings = settings or DedupSettings()
        self._permutations = StoryIndex(self.settings).permutations
        self._now = now

    def key(self, item: Item) -> DedupKey:
        return dedup_key(item, self.settings, self._permutations)

    def candidate_index(self, keys: Iterable[DedupKey]) -> CandidateIndex:
        return _MinHashCandidates(self.settings, keys)

    def story_store(self, folder: Path) -> StoryStore:
        return _StoryIndexStore(self.settings, folder, self._now)


METHODS: tuple[Callable[[], DedupMethod], ...] = (WholeTextMinHash,)
