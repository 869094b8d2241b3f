"""Settings of the service: the ``http:``, ``housekeeping:`` and ``reload:`` sections of the config."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from monitor.types import Duration

__all__ = ["HttpSettings", "HousekeepingSettings", "ClusterSettings", "ReloadSettings"]


class HttpSettings(BaseModel):
    """``http:`` section of the config."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(False, description="Serve /healthz and /metrics.")
    host: str = Field("127.0.0.1", min_length=1, description="Address to bind; keep it on loopback.")
    port: int = Field(9977, ge=0, le=65535, description="TCP port (0 picks a free one).")


class HousekeepingSettings(BaseModel):
    """``housekeeping:`` section of the config."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    retention_days: float = Field(30, gt=0, le=3650, description="Age after which seen items, stories "
                                  "and delivered alerts are deleted.")
    interval_hours: float = Field(6, gt=0, le=24 * 7, description="How often prune and checkpoint run.")
    batch_size: int = Field(500, ge=1, le=100_000, description="Rows deleted per write transaction.")


class ClusterSettings(BaseModel):
    """``cluster:`` section: several daemon instances on one PostgreSQL state (harmless with one)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lease: Duration = Field(300.0, gt=0, description="Seconds a feed's poll (and a channel's delivery) is leased "
                            "to one instance; an instance that dies loses its feeds after this. Must exceed "
                            "fetch.timeout.")
    heartbeat: Duration = Field(15.0, gt=0, description="How often an instance records that it is alive.")


class ReloadSettings(BaseModel):
    """``reload:`` section of the config: how a reload may take rules away."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hold: Duration = Field(60.0, ge=0, le=86400, description="A reload that would remove rules, entities, "
                           "keyword sets or rules files (or shorten one) waits until the files have been "
                           "unchanged this long; the running rules keep working meanwhile.")
    allow_empty_rules: bool = Field(False, description="Accept a reload that leaves no rule at all "
                                    "(otherwise the running rules stay).")
