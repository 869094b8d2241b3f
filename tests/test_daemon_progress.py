"""The daemon's judgement of its own progress, its supervisor and its reload guard, as
tables of cases over an injected clock (the process-level behaviour is in
test_daemon_reliability.py)."""

from __future__ import annotations

import asyncio

import pytest

from monitor.service.progress import DELIVERY_STUCK_AFTER, SLACK, STUCK_INTERVALS, Progress
from monitor.service.reload_guard import Reduction, ReloadGuard, RulesShape, Verdict
from monitor.service.supervise import HEALTHY_AFTER, Supervisor


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# -- progress -----------------------------------------------------------------------------

def test_a_feed_is_stuck_only_after_its_intervals_pass_without_a_recorded_poll():
    clock = Clock()
    progress = Progress(fetch_timeout=30, clock=clock)
    progress.expect("a", interval=60, delay=60)
    grace = max(STUCK_INTERVALS * 60, 30) + SLACK
    clock.now += 60 + grace - 1
    assert progress.reasons() == []
    clock.now += 2
    (reason,) = progress.reasons()
    assert reason.part == "feed a" and reason.stuck and "no poll recorded" in reason.text
    # A recorded poll puts it right; the next deadline counts from the new schedule.
    progress.polled("a", recorded=True)
    progress.expect("a", interval=60, delay=60)
    assert progress.reasons() == []


def test_polls_the_state_did_not_take_do_not_count_as_progress():
    clock = Clock()
    progress = Progress(fetch_timeout=5, clock=clock)
    progress.expect("a", interval=10, delay=10)
    for _ in range(20):  # a full disk: every poll ends, none is recorded, each retried soon
        clock.now += 5
        progress.polled("a", recorded=False, problem="state database: database or disk is full")
        progress.expect("a", interval=10, delay=5)
    reasons = progress.reasons()
    assert [r.stuck for r in reasons] == [True]
    assert "disk is full" in reasons[0].text
    # Before the deadline the same trouble is only "degraded".
    fresh = Progress(fetch_timeout=5, clock=clock)
    fresh.expect("b", interval=10, delay=10)
    fresh.polled("b", recorded=False, problem="database is locked")
    assert [(r.part, r.stuck) for r in fresh.reasons()] == [("feed b", False)]


@pytest.mark.parametrize("steps, stuck", [
    # (seconds later, attempts so far, anything due) ...
    ([(0, 0, True), (DELIVERY_STUCK_AFTER + 1, 0, True)], True),          # due and nothing tried
    ([(0, 0, True), (DELIVERY_STUCK_AFTER / 2, 1, True),
      (DELIVERY_STUCK_AFTER / 2 + 5, 1, True)], False),                   # an attempt meanwhile
    ([(0, 0, False), (DELIVERY_STUCK_AFTER * 3, 0, False)], False),       # nothing due: idle, not stuck
    ([(0, 0, True), (DELIVERY_STUCK_AFTER + 1, 0, False)], False),        # drained
])
def test_delivery_is_stuck_when_messages_wait_and_nothing_is_tried(steps, stuck):
    clock = Clock()
    progress = Progress(fetch_timeout=30, clock=clock)
    for later, attempts, due in steps:
        clock.now += later
        progress.delivery(attempts, due)
    assert any(r.part == "delivery" and r.stuck for r in progress.reasons()) is stuck


def test_feeds_removed_by_a_reload_are_not_expected():
    clock = Clock()
    progress = Progress(fetch_timeout=1, clock=clock)
    progress.expect("gone", interval=1, delay=1)
    progress.forget({"other"})
    clock.now += 3600
    assert progress.reasons() == []


# -- supervisor ---------------------------------------------------------------------------

def test_a_task_that_dies_is_restarted_and_named_until_it_stays_up():
    clock = Clock()

    async def scenario() -> tuple[list[int], list[str], list[str], int]:
        stop = asyncio.Event()
        supervisor = Supervisor(stop, clock=clock, first_backoff=0.01)
        runs: list[int] = []
        healthy = asyncio.Event()

        async def flaky() -> None:
            runs.append(len(runs))
            if len(runs) < 3:
                raise RuntimeError(f"database is locked ({len(runs)})")
            healthy.set()
            await stop.wait()

        supervisor.start("delivery", flaky)
        await asyncio.wait_for(healthy.wait(), 30)
        failing_now = [h.name for h in supervisor.failing()]
        clock.now += HEALTHY_AFTER + 1
        failing_later = [h.name for h in supervisor.failing()]
        restarts = supervisor.health["delivery"].restarts
        stop.set()
        await asyncio.wait_for(asyncio.gather(*supervisor.runners), 10)
        return runs, failing_now, failing_later, restarts

    runs, failing_now, failing_later, restarts = asyncio.run(scenario())
    assert runs == [0, 1, 2] and restarts == 2
    assert failing_now == ["delivery"] and failing_later == []


def test_a_task_that_returns_early_is_restarted_too():
    async def scenario() -> int:
        stop = asyncio.Event()
        supervisor = Supervisor(stop, first_backoff=0.01)
        calls: list[int] = []

        async def returns() -> None:
            calls.append(1)
            if len(calls) == 2:
                stop.set()

        supervisor.start("watcher", returns)
        await asyncio.wait_for(asyncio.gather(*supervisor.runners), 30)
        return len(calls)

    assert asyncio.run(scenario()) == 2


# -- reload guard -------------------------------------------------------------------------

def shape(rules=("r1", "r2"), entities=("e1", "e2"), files=(("a.yaml", 100), ("b.yaml", 50)), fp="x"):
    return RulesShape(frozenset(rules), frozenset(entities), frozenset(), tuple(files), fp)


@pytest.mark.parametrize("new, verdict, text", [
    (shape(rules=("r1", "r2", "r3"), fp="y"), Verdict.ACCEPT, ""),                          # an addition
    (shape(rules=("r1",), fp="y"), Verdict.HOLD, "rules r2"),                              # a rule gone
    (shape(entities=("e1",), fp="y"), Verdict.HOLD, "entities e2"),
    (shape(files=(("a.yaml", 100),), fp="y"), Verdict.HOLD, "files gone: b.yaml"),
    (shape(files=(("a.yaml", 40), ("b.yaml", 50)), fp="y"), Verdict.HOLD, "a.yaml (100 -> 40 bytes)"),
    (shape(rules=(), fp="y"), Verdict.REFUSE, "no rule at all"),
])
def test_reloads_that_would_remove_something_are_held_and_empty_rules_refused(new, verdict, text):
    decision = ReloadGuard(clock=Clock()).decide(shape(), new, hold=60, allow_empty=False)
    assert decision.verdict is verdict
    assert text in (decision.reduction.describe() + decision.message)


def test_a_held_reduction_is_accepted_once_the_same_files_were_stable_for_the_hold():
    clock = Clock()
    guard = ReloadGuard(clock=clock)
    smaller = shape(rules=("r1",), fp="y")
    assert guard.decide(shape(), smaller, hold=60, allow_empty=False).verdict is Verdict.HOLD
    clock.now += 30
    # The files changed again meanwhile (another truncation): the wait starts over.
    other = shape(rules=("r2",), fp="z")
    held = guard.decide(shape(), other, hold=60, allow_empty=False)
    assert held.verdict is Verdict.HOLD and held.until == clock.now + 60
    clock.now += 59
    assert guard.decide(shape(), other, hold=60, allow_empty=False).verdict is Verdict.HOLD
    clock.now += 1
    accepted = guard.decide(shape(), other, hold=60, allow_empty=False)
    assert accepted.verdict is Verdict.ACCEPT and accepted.reduction == Reduction(rules=("r1",))
    # The file came back before the hold ran out: nothing is removed, accepted at once.
    guard.decide(shape(), smaller, hold=60, allow_empty=False)
    assert guard.decide(shape(), shape(fp="x2"), hold=60, allow_empty=False).verdict is Verdict.ACCEPT
    assert guard.holding_since is None


def test_an_empty_rule_set_needs_the_explicit_flag():
    empty = shape(rules=(), fp="y")
    assert ReloadGuard(clock=Clock()).decide(shape(), empty, hold=0, allow_empty=False).verdict is Verdict.REFUSE
    assert ReloadGuard(clock=Clock()).decide(shape(), empty, hold=0, allow_empty=True).verdict is Verdict.ACCEPT
