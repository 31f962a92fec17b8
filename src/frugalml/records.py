"""Records: what frugal measures and keeps, as frozen dataclasses with units in field names.

A measurement is a record, not a print. ``Usage`` is the cost of one run; ``RunRecord`` is one
row of the ledger. Both round-trip through plain dicts (``to_dict`` / ``from_dict``) so they can
live in JSON columns, ``--json`` output and files.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

EnergySource = Literal["nvml", "rapl", "estimate"]
RunStatus = Literal["running", "finished", "failed", "crashed", "stopped"]
RUN_STATUSES: tuple[str, ...] = ("running", "finished", "failed", "crashed", "stopped")


def _from_dict(cls: Any, data: dict[str, Any]) -> Any:
    """Build a dataclass from a dict, ignoring keys the class does not know (newer writers)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class Hardware:
    """Fingerprint of the machine a run used."""

    cpu_model: str
    cpu_logical_cores: int
    cpu_physical_cores: int | None
    memory_bytes: int
    gpu_name: str | None = None
    gpu_count: int = 0
    gpu_driver: str | None = None
    platform: str = ""
    hostname: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Hardware:
        return _from_dict(cls, data)


@dataclass(frozen=True)
class EnergyPart:
    """Energy of one domain (``cpu``, ``gpu``) over a run, in joules, with where it came from."""

    domain: str
    energy_j: float
    source: EnergySource


@dataclass(frozen=True)
class Usage:
    """What one run cost.

    Times in seconds, memory in bytes, energy in joules, money in US dollars, CO2 in grams.
    ``energy_source`` says whether ``energy_j`` is a reading (``nvml``, ``rapl``) or an
    ``estimate``; where a GPU was read by NVML but the host CPU was estimated, the source is
    ``nvml`` and ``energy_parts`` says which part is which. ``cost_usd`` is the instance-hour
    cost for a priced (cloud) instance, whose price already includes its electricity, and the
    energy cost for ``local`` hardware; both figures are kept.
    """

    wall_s: float
    cpu_s: float
    device_s: float
    peak_host_bytes: int
    peak_device_bytes: int
    energy_j: float
    energy_source: EnergySource
    instance_cost_usd: float
    energy_cost_usd: float
    cost_usd: float
    co2_g: float
    instance: str
    region: str
    usd_per_hour: float
    usd_per_kwh: float
    g_co2_per_kwh: float
    energy_parts: tuple[EnergyPart, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["energy_parts"] = [dataclasses.asdict(p) for p in self.energy_parts]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Usage:
        data = dict(data)
        data["energy_parts"] = tuple(EnergyPart(**p) for p in data.get("energy_parts") or ())
        return _from_dict(cls, data)

    @property
    def energy_label(self) -> str:
        """``"12.3 J (estimate)"``: the energy with its source, as it must always be shown."""
        parts = "; ".join(f"{p.domain}: {p.source}" for p in self.energy_parts)
        detail = f"; {parts}" if len(self.energy_parts) > 1 else ""
        return f"{self.energy_j:.1f} J ({self.energy_source}{detail})"


@dataclass(frozen=True)
class RunRecord:
    """One run in the ledger.

    ``status`` is ``running`` while the run's process is alive and beating, then ``finished``,
    ``failed`` (it raised or exited non-zero; ``error`` says how) or ``crashed`` (its process
    died without saying so: killed, out of memory, machine lost) or ``stopped`` (a guardrail
    stopped it: ``error`` names the reason, ``usage`` holds its usage so far).
    """

    id: str
    name: str
    kind: str
    status: RunStatus
    started_at: datetime
    ended_at: datetime | None = None
    heartbeat_at: datetime | None = None
    parent_id: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    usage: Usage | None = None
    quality: dict[str, float] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    hardware: Hardware | None = None
    environment: dict[str, Any] = field(default_factory=dict)
    host: str = ""
    pid: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; usage fields are also flattened to the top level (``wall_s``...)."""
        data: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "status": self.status,
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "heartbeat_at": self.heartbeat_at.isoformat() if self.heartbeat_at else None,
            "parent_id": self.parent_id,
            "params": self.params,
            "quality": self.quality,
            "artifacts": self.artifacts,
            "error": self.error,
            "hardware": self.hardware.to_dict() if self.hardware else None,
            "environment": self.environment,
            "host": self.host,
            "pid": self.pid,
            "usage": self.usage.to_dict() if self.usage else None,
        }
        flat = self.usage.to_dict() if self.usage else {}
        for key in (
            "wall_s",
            "cpu_s",
            "device_s",
            "peak_host_bytes",
            "peak_device_bytes",
            "energy_j",
            "energy_source",
            "cost_usd",
            "instance_cost_usd",
            "energy_cost_usd",
            "co2_g",
            "instance",
            "region",
        ):
            data[key] = flat.get(key)
        return data
