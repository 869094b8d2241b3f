"""Reloads that cannot lose alerts.

A rules file removed for 10 s (a ``git checkout``, an editor's save, a sync
tool) or truncated to a shorter file that still parses was accepted at once
("0 rules" / "1 rules"); items polled meanwhile were marked seen without the
missing rules and never alerted, even after the file came back. So a reload
that would *remove* something (a rule, an entity, a keyword set, a rules file,
or bytes of a rules file: a shorter file may have lost aliases) is held back
until the very same files have been stable for ``reload.hold`` seconds; the
running rules keep polling meanwhile, and a WARNING lists the difference. A
rule set with no rules at all is never accepted on reload unless
``reload.allow_empty_rules`` says so. Additions apply at once.

Pure decisions over an injected clock; the daemon does the loading and the
swapping.
"""

from __future__ import annotations

import enum
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

__all__ = ["RulesShape", "Reduction", "Verdict", "Decision", "ReloadGuard"]


@dataclass(frozen=True)
class RulesShape:
    """What a loaded rule set consists of, as far as losing alerts goes."""

    rules: frozenset[str]
    entities: frozenset[str]
    keywords: frozenset[str]
    file_sizes: tuple[tuple[str, int], ...]
    fingerprint: str = ""

    @classmethod
    def of(cls, rule_ids: Iterable[str], entity_ids: Iterable[str], keyword_ids: Iterable[str],
           sources: Iterable[str], fingerprint: str = "") -> RulesShape:
        sizes = []
        for source in sources:
            try:
                sizes.append((str(source), os.stat(source).st_size))
            except OSError:
                continue  # gone since it was read: the next reload sees that
        return cls(frozenset(rule_ids), frozenset(entity_ids), frozenset(keyword_ids), tuple(sorted(sizes)),
                   fingerprint)


@dataclass(frozen=True)
class Reduction:
    """What a new rule set would take away from the running one."""

    rules: tuple[str, ...] = ()
    entities: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    files_gone: tuple[str, ...] = ()
    files_shorter: tuple[tuple[str, int, int], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.rules or self.entities or self.keywords or self.files_gone or self.files_shorter)

    @classmethod
    def between(cls, old: RulesShape, new: RulesShape) -> Reduction:
        old_sizes, new_sizes = dict(old.file_sizes), dict(new.file_sizes)
        return cls(
            rules=tuple(sorted(old.rules - new.rules)),
            entities=tuple(sorted(old.entities - new.entities)),
            keywords=tuple(sorted(old.keywords - new.keywords)),
            files_gone=tuple(sorted(set(old_sizes) - set(new_sizes))),
            files_shorter=tuple(sorted((f, old_sizes[f], size) for f, size in new_sizes.items()
                                       if f in old_sizes and size < old_sizes[f])),
        )

    def describe(self) -> str:
        parts = []
        for label, names in (("rules", self.rules), ("entities", self.entities), ("keyword sets", self.keywords)):
            if names:
                parts.append(f"{label} {', '.join(names[:20])}" + (" ..." if len(names) > 20 else ""))
        if self.files_gone:
            parts.append("files gone: " + ", ".join(self.files_gone))
        if self.files_shorter:
            parts.append("files shorter: " + ", ".join(f"{f} ({a} -> {b} bytes)" for f, a, b in self.files_shorter))
        return "; ".join(parts)


class Verdict(enum.Enum):
    ACCEPT = "accept"
    HOLD = "hold"
    REFUSE = "refuse"


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reduction: Reduction = field(default_factory=Reduction)
    until: float | None = None      # HOLD: when the same files may be accepted
    message: str = ""


@dataclass
class _Pending:
    identity: tuple[str, tuple[tuple[str, int], ...]]
    since: float


class ReloadGuard:
    """Decides, reload by reload, whether a new rule set may replace the running one."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._pending: _Pending | None = None

    @property
    def holding_since(self) -> float | None:
        return self._pending.since if self._pending is not None else None

    def decide(self, old: RulesShape, new: RulesShape, *, hold: float, allow_empty: bool) -> Decision:
        if not new.rules and old.rules and not allow_empty:
            self._pending = None
            return Decision(Verdict.REFUSE, Reduction.between(old, new),
                            message="the new rules define no rule at all; the running rules stay "
                                    "(set reload.allow_empty_rules: true to accept an empty rule set)")
        reduction = Reduction.between(old, new)
        if not reduction:
            self._pending = None
            return Decision(Verdict.ACCEPT)
        identity = (new.fingerprint, new.file_sizes)
        now = self.clock()
        if self._pending is None or self._pending.identity != identity:
            self._pending = _Pending(identity, now)
        if now - self._pending.since >= hold:
            self._pending = None
            return Decision(Verdict.ACCEPT, reduction, message=f"accepted after the files were stable for "
                                                               f"{hold:g} s")
        return Decision(Verdict.HOLD, reduction, until=self._pending.since + hold,
                        message=f"the running rules stay until these files have been unchanged for {hold:g} s")
