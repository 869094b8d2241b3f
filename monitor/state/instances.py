"""The ``instances`` and ``channel_leases`` tables: several daemons on one database.

Each running daemon registers itself and beats a heartbeat, so ``monitor
status`` can show who is alive and what each one holds. A channel is
delivered by one instance at a time (a lease with an expiry, renewed while it
delivers): the messages of one chat keep their order, and the channel's rate
limit (Telegram's per-chat and per-group limits) holds across instances
because only the holder sends. An instance that dies loses its leases when
they expire; one that stops cleanly gives them up at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from monitor.state import feeds
from monitor.state.db import Database

__all__ = ["InstanceRecord", "register", "heartbeat", "stopped", "live", "reap", "take_channel", "release_channels",
           "channel_holders"]


@dataclass(frozen=True)
class InstanceRecord:
    id: str
    host: str
    pid: int
    version: str
    started: float
    heartbeat: float
    stopped: float | None


def register(db: Database, instance: str, *, host: str, pid: int, version: str, now: float) -> None:
    with db.transaction():
        db.execute("INSERT INTO instances (id, host, pid, version, started, heartbeat) VALUES (?, ?, ?, ?, ?, ?) "
                   "ON CONFLICT(id) DO UPDATE SET heartbeat = excluded.heartbeat, stopped = NULL",
                   (instance, host, pid, version, now, now))


def heartbeat(db: Database, instance: str, now: float) -> None:
    with db.transaction():
        db.execute("UPDATE instances SET heartbeat = ? WHERE id = ?", (now, instance))


def stopped(db: Database, instance: str, now: float) -> None:
    """A clean stop: the instance's channel leases are given up in the same transaction."""
    with db.transaction():
        db.execute("UPDATE instances SET stopped = ?, heartbeat = ? WHERE id = ?", (now, now, instance))
        release_channels(db, instance)


def reap(db: Database, *, me: str, host: str, now: float, stale_after: float,
         is_running: Callable[[int], bool]) -> list[str]:
    """Mark dead instances stopped and free their leases; returns their ids.

    Dead: on this host, its process is gone (a daemon restarted after a crash
    takes its feeds and channels back at once instead of waiting for the
    leases to expire); on any host, no heartbeat for ``stale_after`` seconds.
    What a dead instance left 'sending' is re-queued by whoever takes over the
    channel (``monitor.alerts.deliver``).
    """
    dead = [r["id"] for r in db.all("SELECT id, host, pid, heartbeat FROM instances WHERE stopped IS NULL AND id != ?",
                                    (me,))
            if (r["host"] == host and not is_running(int(r["pid"]))) or float(r["heartbeat"]) < now - stale_after]
    for instance in dead:
        with db.transaction():
            db.execute("UPDATE instances SET stopped = ? WHERE id = ?", (now, instance))
            release_channels(db, instance)  # the nested transactions join this one
            feeds.release_leases(db, instance)
    return dead


def live(db: Database, since: float) -> list[InstanceRecord]:
    """Instances that beat after ``since`` and did not stop, oldest first."""
    return [InstanceRecord(r["id"], r["host"], int(r["pid"]), r["version"], float(r["started"]),
                           float(r["heartbeat"]), None) for r in db.all(
        "SELECT id, host, pid, version, started, heartbeat FROM instances WHERE heartbeat >= ? AND stopped IS NULL "
        "ORDER BY started, id", (since,))]


def take_channel(db: Database, channel: str, *, owner: str, now: float, seconds: float) -> bool:
    """Take or renew the lease on delivering ``channel``; False while another live instance holds it."""
    with db.transaction():
        db.execute("INSERT INTO channel_leases (channel, owner, until) VALUES (?, ?, ?) "
                   "ON CONFLICT(channel) DO NOTHING", (channel, owner, now + seconds))
        return db.execute("UPDATE channel_leases SET owner = ?, until = ? WHERE channel = ? "
                          "AND (owner = ? OR until < ?)",
                          (owner, now + seconds, channel, owner, now)).rowcount == 1


def release_channels(db: Database, owner: str) -> None:
    with db.transaction():
        db.execute("DELETE FROM channel_leases WHERE owner = ?", (owner,))


def channel_holders(db: Database, now: float) -> dict[str, str]:
    """Channel -> the instance delivering it now."""
    return {r["channel"]: r["owner"] for r in db.all("SELECT channel, owner FROM channel_leases WHERE until >= ?",
                                                    (now,))}
