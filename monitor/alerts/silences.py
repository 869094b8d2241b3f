"""Which silence, if any, holds back an alert on a channel (pure; the silences come from ``monitor.state``).

A silence matches when every matcher it sets matches: ``rule`` the alert's
rule, ``channel`` the channel, ``entity`` an entity (or keyword set) whose
mention made the rule fire, as Alertmanager matches a label. Routing asks
when it queues an alert (the row is recorded as silenced, not sent) and the
deliverer asks again before sending (a silence added while the row waited
holds it back too).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from monitor.state.silences import Silence

__all__ = ["silencing"]


def silencing(silences: Iterable[Silence], *, rule_id: str, entities: Collection[str], channel: str,
              now: float) -> Silence | None:
    """The first silence in force at ``now`` that matches the alert on ``channel`` (None: send it)."""
    for silence in silences:
        if not silence.is_active(now):
            continue
        if silence.rule_id is not None and silence.rule_id != rule_id:
            continue
        if silence.channel is not None and silence.channel != channel:
            continue
        if silence.entity is not None and silence.entity not in entities:
            continue
        return silence
    return None
