"""Prices: what an hour of an instance and a kWh in a region cost, and the grid's CO2.

The catalog ships with the package (``prices.toml``, every entry with its source and date).
A user config file (``settings.config_path()``) may add or override ``[instances.*]``,
``[regions.*]``, ``[gpus.*]``, ``[cpus.*]``, ``[chips.*]`` (peak FLOP/s and bandwidth, for
``frugal place``), ``[spot]`` and ``[defaults]`` entries, and set ``instance`` and ``region``.
Instance names may end in ``:spot`` to use the spot price.
"""

from __future__ import annotations

import functools
import math
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from importlib import resources
from typing import Any

from frugalml.errors import BadInput
from frugalml.settings import load_config

AUTO = "auto"


@functools.cache
def _builtin() -> dict[str, Any]:
    return tomllib.loads(resources.files("frugalml.measure").joinpath("prices.toml").read_text())


def catalog() -> dict[str, Any]:
    """The shipped catalog with the user's config merged over it (table by table)."""
    base = _builtin()
    user = load_config()
    merged: dict[str, Any] = {}
    for section in ("defaults", "gpus", "cpus", "chips", "spot", "instances", "regions"):
        merged[section] = {**base.get(section, {})}
        for key, value in (user.get(section) or {}).items():
            if isinstance(value, dict) and isinstance(merged[section].get(key), dict):
                merged[section][key] = {
                    **merged[section][key],
                    **value,
                    "source": value.get("source", "user config"),
                }
            elif isinstance(value, dict):
                merged[section][key] = {"source": "user config", **value}
            else:
                merged[section][key] = value
    merged["meta"] = base.get("meta", {})
    merged["user"] = {k: user[k] for k in ("instance", "region") if k in user}
    return merged


def catalog_age(entries: list[dict[str, Any]] | None = None, today: date | None = None) -> str:
    """``"prices checked 2025-06 (18 months ago)"``: the oldest ``checked`` month of ``entries``
    (default: every instance), for every statement that uses the catalog."""
    if entries is None:
        entries = list(catalog()["instances"].values())
    months = sorted(str(e["checked"]) for e in entries if e.get("checked"))
    if not months:
        return "prices: user config (no date)"
    oldest = months[0]
    today = today or datetime.now(UTC).date()
    try:
        year, month = (int(x) for x in oldest.split("-")[:2])
    except ValueError:
        return f"prices checked {oldest}"
    age = (today.year - year) * 12 + today.month - month
    return f"prices checked {oldest} ({age} month{'s' if age != 1 else ''} ago)"


def price_entries(instances: Sequence[str | None]) -> list[dict[str, Any]]:
    """The catalog entries behind the prices of ``instances`` (names as recorded, ``:spot``
    allowed): an instance's own entry; for ``auto``, the catalog's per-vCPU rate (dated by
    the catalog's version, or undated when the user's config sets the rate). Names the
    catalog does not know are left out."""
    cat = catalog()
    user_defaults = load_config().get("defaults") or {}
    out: list[dict[str, Any]] = []
    for inst in instances:
        name = (inst or "").partition(":")[0]
        if name == AUTO:
            if "cpu_usd_per_vcpu_hour" in user_defaults:
                out.append({"source": "user config"})
            else:
                out.append({"checked": cat["meta"].get("catalog_version")})
        elif name in cat["instances"]:
            out.append(cat["instances"][name])
    return out


def price_age(
    instances: Sequence[str | None], regions: Sequence[str | None] = (), today: date | None = None
) -> str:
    """:func:`catalog_age` of the entries that priced ``instances`` in ``regions`` (their
    electricity and grid figures): "prices checked 2025-06 (18 months ago)"."""
    cat = catalog()
    entries = price_entries(instances)
    entries += [cat["regions"][r] for r in dict.fromkeys(regions) if r in cat["regions"]]
    return catalog_age(entries, today)


def price_note(instances: Sequence[str | None], regions: Sequence[str | None] = ()) -> str:
    """One line for a statement whose dollars came from the catalog: which prices, how old
    ("" when none of ``instances`` is priced by the catalog: nothing to date)."""
    if not price_entries(instances):
        return ""
    names = ", ".join(dict.fromkeys(i for i in instances if i))
    return f"$ figures at the catalog's prices for {names}: {price_age(instances, regions)}."


@dataclass(frozen=True)
class Price:
    """The prices a run is charged at."""

    instance: str
    usd_per_hour: float
    instance_source: str
    region: str
    usd_per_kwh: float
    g_co2_per_kwh: float
    region_source: str
    priced_by_hour: bool  # False for "local": cost is the energy bill

    def cost(self, wall_s: float, energy_j: float) -> tuple[float, float, float, float]:
        """(instance_cost_usd, energy_cost_usd, cost_usd, co2_g) for a run."""
        kwh = energy_j / 3.6e6
        instance_cost = wall_s / 3600.0 * self.usd_per_hour
        energy_cost = kwh * self.usd_per_kwh
        total = instance_cost if self.priced_by_hour else energy_cost
        return instance_cost, energy_cost, total, kwh * self.g_co2_per_kwh

    def per_1m_requests(self, throughput_per_s: float, energy_j_per_1k: float) -> float:
        """$ per 1M requests (one request = one text): the instance-hours 1M texts take at
        ``throughput_per_s``; on ``local`` hardware (no hourly price) their energy bill."""
        if not self.priced_by_hour:
            return energy_j_per_1k * 1000.0 / 3.6e6 * self.usd_per_kwh
        return 1e6 / throughput_per_s / 3600.0 * self.usd_per_hour if throughput_per_s else math.inf


def _match_gpu(name: str, gpus: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    for key in sorted(gpus, key=len, reverse=True):
        if key.lower() in name.lower():
            return key, gpus[key]
    return None


def cpu_watts(cpu_model: str) -> float:
    """Watts of one busy logical CPU for this CPU model (catalog), for energy estimates."""
    cat = catalog()
    for key in sorted(cat["cpus"], key=len, reverse=True):
        if key.lower() in cpu_model.lower():
            return float(cat["cpus"][key]["w_per_busy_core"])
    return float(cat["defaults"]["cpu_w_per_busy_core"])


def gpu_watts(gpu_name: str | None) -> float:
    cat = catalog()
    found = _match_gpu(gpu_name or "", cat["gpus"])
    return float(found[1]["tdp_w"]) if found else float(cat["defaults"]["gpu_w"])


def _auto_instance(
    cat: dict[str, Any], vcpus: int, gpu_names: tuple[str, ...]
) -> tuple[float, str]:
    rate = float(cat["defaults"]["cpu_usd_per_vcpu_hour"])
    usd = vcpus * rate
    parts = [f"{vcpus} vCPU x {rate:.4f} $/h ({cat['defaults']['cpu_usd_per_vcpu_hour_source']})"]
    for name in gpu_names:
        found = _match_gpu(name, cat["gpus"])
        if found is None:
            continue
        usd += float(found[1]["usd_per_hour"])
        parts.append(f"{found[0]} {found[1]['usd_per_hour']} $/h ({found[1]['source']})")
    return usd, "auto: " + " + ".join(parts)


def resolve(
    instance: str | None = None,
    region: str | None = None,
    *,
    vcpus: int | None = None,
    gpu_names: tuple[str, ...] | None = None,
) -> Price:
    """Prices for ``instance`` in ``region``; ``None`` means the config's choice or the default.

    Raises ``BadInput`` naming the choices when an instance or region is unknown.
    """
    cat = catalog()
    instance = instance or cat["user"].get("instance") or AUTO
    name, _, variant = instance.partition(":")
    if variant not in ("", "spot", "ondemand"):
        raise BadInput(
            f"unknown price variant '{variant}' in instance '{instance}'",
            hint="use NAME or NAME:spot",
        )
    if name == AUTO:
        if vcpus is None or gpu_names is None:
            from frugalml.measure.hardware import hardware

            hw = hardware()
            vcpus = hw.cpu_logical_cores if vcpus is None else vcpus
            gpu_names = (
                tuple([hw.gpu_name] * hw.gpu_count)
                if gpu_names is None and hw.gpu_name
                else (gpu_names or ())
            )
        usd_per_hour, source = _auto_instance(cat, vcpus, gpu_names)
        entry: dict[str, Any] = {"usd_per_hour": usd_per_hour, "source": source}
        priced = True
    else:
        if name not in cat["instances"]:
            raise BadInput(
                f"unknown instance type '{name}'",
                hint="run `frugal prices` for the list, or add it under [instances] in "
                "your config file",
            )
        entry = cat["instances"][name]
        priced = name != "local"
        if variant == "spot":
            if "spot_usd_per_hour" not in entry:
                raise BadInput(
                    f"instance '{name}' has no spot price in the catalog",
                    hint="set spot_usd_per_hour for it in your config file",
                )
            entry = {**entry, "usd_per_hour": entry["spot_usd_per_hour"]}
    region = region or cat["user"].get("region") or entry.get("region") or cat["defaults"]["region"]
    if region not in cat["regions"]:
        raise BadInput(
            f"unknown region '{region}'",
            hint=f"choose one of {', '.join(sorted(cat['regions']))} or add it under "
            "[regions] in your config file",
        )
    reg = cat["regions"][region]
    return Price(
        instance=instance,
        usd_per_hour=float(entry["usd_per_hour"]),
        instance_source=str(entry.get("source", "")),
        region=region,
        usd_per_kwh=float(reg["usd_per_kwh"]),
        g_co2_per_kwh=float(reg["g_co2_per_kwh"]),
        region_source=str(reg.get("source", "")),
        priced_by_hour=priced,
    )
