"""Placement: where a measured workload is cheapest to run (``frugal place``).

From one measured run (an ``eval``: throughput and batch latency; a fine-tune: wall time),
every catalog instance gets a row with its throughput, p99 batch latency and $ per 1M
requests (or $ per training run). The run's own hardware is **measured**; every other row is
a **prediction** of the roofline model in :mod:`frugalml.measure.roofline`, calibrated on the
measured run, and carries its inputs (chip peaks, bound, efficiency, overhead).

Stated rules:

- a GPU instance serves one batch per GPU and runs its GPUs as replicas (throughput x GPUs);
  a CPU instance runs one batch on all its physical cores;
- a training run is compute-bound: its time scales with the peak FLOP/s (all GPUs, data
  parallel);
- ``--min-throughput`` is what one instance must serve; ``--slo-p99-ms`` bounds the p99 batch
  latency;
- ``--spot`` prices at the catalog's spot price times the expected hours per useful hour:
  ``1 + interruptions_per_hour x restart_h`` (serving) or
  ``1 + interruptions_per_hour x (checkpoint_h / 2 + restart_h)`` (training).
"""

from __future__ import annotations

import fnmatch
import math
import socket
from dataclasses import asdict, dataclass, field
from typing import Any

from frugalml.errors import BadInput
from frugalml.measure import roofline as rl
from frugalml.records import RunRecord

TRAINING_KINDS = ("finetune", "train", "trial")
_BYTES_PER_PARAM = {"fp32": 4.0, "bf16": 2.0, "int8": 1.0}


@dataclass(frozen=True)
class Row:
    """One instance's figures: ``label`` is ``measured`` or ``predicted``."""

    instance: str
    label: str
    price: str  # "on-demand" | "spot"
    usd_per_hour: float | None
    throughput_per_s: float | None
    latency_ms_p99: float | None
    wall_s: float | None
    usd: float | None  # $ per unit (Placement.unit)
    meets: bool
    reason: str = ""
    approx: bool = False
    inputs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Placement:
    run_id: str
    kind: str
    unit: str  # "1M requests" | "training run"
    slo: dict[str, float]
    catalog_age: str
    model: str
    rows: tuple[Row, ...]

    @property
    def best(self) -> Row:
        return self.rows[0]

    def statement(self) -> str:
        """The placement change, each side labelled measured or predicted (one sentence)."""
        here = next((r for r in self.rows if r.label == "measured"), None)
        best = self.best
        slo = f"at the same SLO ({_slo_text(self.slo)})" if self.slo else "with no SLO given"
        if here is None or best is here or here.usd is None or best.usd is None:
            return (
                f"this run's hardware is the cheapest that meets the SLO, {slo} "
                f"({self.catalog_age})"
            )
        cut = 1.0 - best.usd / here.usd
        verb = "cuts" if cut >= 0 else "raises"
        return (
            f"moving this workload from {here.instance} (measured, ${here.usd:.4g} per "
            f"{self.unit}) to {best.instance} ({best.label}, ${best.usd:.4g}) {verb} $ per "
            f"{self.unit} by {abs(cut):.0%} {slo} ({self.catalog_age})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "statement": self.statement(),
            "run_id": self.run_id,
            "kind": self.kind,
            "unit": self.unit,
            "slo": self.slo,
            "catalog_age": self.catalog_age,
            "model": self.model,
            "rows": [asdict(r) for r in self.rows],
        }


def select_instances(cat: dict[str, Any], patterns: str | None) -> list[str]:
    """Catalog instances named by comma-separated names or globs (``aws/*,gcp/g2-*``)."""
    names = [n for n in cat["instances"] if n != "local"]
    if not patterns:
        return names
    chosen: list[str] = []
    for pattern in (p.strip() for p in patterns.split(",")):
        if not pattern:
            continue
        hits = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            raise BadInput(
                f"unknown instance '{pattern}' in --instances",
                hint="run `frugal prices` for the list, or add it under [instances] in your "
                "config file",
            )
        chosen += [h for h in hits if h not in chosen]
    return chosen


def precision_of(text: str) -> str:
    """The workload's precision from a model description (``"... (torch, float32, cpu)"``)."""
    t = text.lower()
    if "int8" in t:
        return "int8"
    if "bfloat16" in t or "float16" in t or "bf16" in t or "fp16" in t:
        return "bf16"
    return "fp32"


def _measured_peak(
    cat: dict[str, Any], record: RunRecord, device: str, threads: int | None, precision: str
) -> rl.Peak:
    hw = record.hardware
    if hw is None:
        raise BadInput(f"run {record.id[:12]} has no hardware recorded to calibrate on")
    if device.startswith("cuda"):
        chip = rl.match_chip(cat, gpu_name=hw.gpu_name or "")
        what = hw.gpu_name or "an unnamed GPU"
    else:
        flags = rl.local_cpu_flags() if hw.hostname == socket.gethostname() else set()
        chip = rl.match_chip(cat, cpu_model=hw.cpu_model, cpu_flags=flags)
        what = hw.cpu_model
    if chip is None:
        raise BadInput(
            f"the measured hardware ({what}) has no peak figures in the catalog",
            hint="add it under [chips] with cpu_match/gpu_match in your config file "
            "(docs/prices.md)",
        )
    entry = cat["chips"][chip]
    if entry.get("kind") == "cpu":
        ratio = (hw.cpu_physical_cores or hw.cpu_logical_cores / 2) / hw.cpu_logical_cores
        units = max(1.0, (threads or hw.cpu_logical_cores) * ratio)
        return rl.chip_peak(chip, entry, precision, units, float(hw.memory_bytes))
    mem = float(entry["memory_gib"]) * 2**30 if "memory_gib" in entry else None
    return rl.chip_peak(chip, entry, precision, 1.0, mem)


def _spot(cat: dict[str, Any], name: str, peak: rl.Peak | None, training: bool) -> float:
    """Expected hours per useful hour on spot (the module docstring's rule)."""
    spot = cat["spot"]
    entry = cat["instances"].get(name, {})
    family = "cpu" if peak is not None and peak.kind == "cpu" else "gpu"
    if family == "gpu" and float(entry.get("gpus", 1)) >= 8:
        family = "gpu-large"
    rate = float(spot["interruptions_per_hour"][family])
    lost_h = float(spot["restart_minutes"]) / 60.0
    if training:
        lost_h += float(spot["checkpoint_minutes"]) / 120.0
    return 1.0 + rate * lost_h


def _price(
    cat: dict[str, Any], name: str, spot: bool, peak: rl.Peak | None, training: bool
) -> tuple[float | None, float, str]:
    """(usd_per_hour, restart factor, reason) for instance ``name``."""
    entry = cat["instances"][name]
    if not spot:
        return float(entry["usd_per_hour"]), 1.0, ""
    if "spot_usd_per_hour" not in entry:
        return None, 1.0, "no spot price in the catalog"
    return float(entry["spot_usd_per_hour"]), _spot(cat, name, peak, training), ""


def _meets(tput: float | None, p99: float | None, slo: dict[str, float]) -> str:
    if "p99_ms" in slo and (p99 is None or p99 > slo["p99_ms"]):
        return f"p99 {p99:.1f} ms > {slo['p99_ms']:g} ms" if p99 is not None else "no p99"
    if "min_throughput" in slo and (tput is None or tput < slo["min_throughput"]):
        return f"{tput:.1f}/s < {slo['min_throughput']:g}/s" if tput is not None else "no rate"
    return ""


def place(
    record: RunRecord,
    cat: dict[str, Any],
    *,
    slo_p99_ms: float | None = None,
    min_throughput: float | None = None,
    instances: str | None = None,
    spot: bool = False,
    tokens_per_request: int | None = None,
    checkpoint_minutes: float | None = None,
) -> Placement:
    """Rank ``instances`` of catalog ``cat`` for the workload measured by ``record``.

    Raises ``BadInput`` (one line) for a run with no throughput or wall time, unknown
    instance names, hardware with no peak figures, or an SLO no instance meets.
    """
    from frugalml.measure.prices import catalog_age

    if checkpoint_minutes is not None:
        if not checkpoint_minutes > 0:
            raise BadInput("--checkpoint-minutes must be positive")
        cat = {**cat, "spot": {**cat["spot"], "checkpoint_minutes": checkpoint_minutes}}
    names = select_instances(cat, instances)
    used = [cat["instances"][n] for n in names]
    used += [cat["chips"][e["chip"]] for e in used if e.get("chip") in cat["chips"]]
    training = record.kind in TRAINING_KINDS
    slo: dict[str, float] = {}
    if slo_p99_ms is not None:
        slo["p99_ms"] = slo_p99_ms
    if min_throughput is not None:
        slo["min_throughput"] = min_throughput
    if any(v <= 0 for v in slo.values()):
        raise BadInput("--slo-p99-ms and --min-throughput must be positive")
    if training:
        rows = _training_rows(record, cat, names, spot, slo)
        unit = "training run"
    else:
        rows = _serving_rows(record, cat, names, spot, slo, tokens_per_request)
        unit = "1M requests"
    ok = sorted((r for r in rows if r.meets), key=lambda r: (r.usd or math.inf, r.instance))
    if not ok:
        near = [r for r in rows if r.reason and r.usd is not None]
        hint = "; ".join(f"{r.instance}: {r.reason}" for r in near[:3]) or "loosen the SLO"
        raise BadInput(
            f"no instance meets the SLO ({_slo_text(slo) or 'none'}) for run "
            f"{record.id[:12]} among {len(names)} instance(s)",
            hint=hint,
        )
    rest = sorted((r for r in rows if not r.meets), key=lambda r: (r.usd or math.inf, r.instance))
    model = (
        "measured: the run's own hardware, at its recorded price; predicted: roofline "
        "t = overhead + max(batch x FLOPs/request / peak FLOP/s, weight bytes / bandwidth) "
        "/ efficiency, efficiency calibrated on the measured run"
        if not training
        else "measured: the run's own wall time; predicted: wall time x measured peak FLOP/s "
        "/ instance peak FLOP/s (compute-bound, GPUs data parallel)"
    )
    return Placement(
        run_id=record.id,
        kind=record.kind,
        unit=unit,
        slo=slo,
        catalog_age=catalog_age(used),
        model=model,
        rows=tuple(ok + rest),
    )


def _slo_text(slo: dict[str, float]) -> str:
    parts = []
    if "p99_ms" in slo:
        parts.append(f"p99 ≤ {slo['p99_ms']:g} ms")
    if "min_throughput" in slo:
        parts.append(f"≥ {slo['min_throughput']:g}/s per instance")
    return ", ".join(parts)


def _serving_rows(
    record: RunRecord,
    cat: dict[str, Any],
    names: list[str],
    spot: bool,
    slo: dict[str, float],
    tokens_per_request: int | None,
) -> list[Row]:
    ev = record.params.get("eval") if isinstance(record.params.get("eval"), dict) else None
    tput = (ev or {}).get("throughput_per_s")
    if not tput or not ev:
        raise BadInput(
            f"run {record.id[:12]} ({record.kind} '{record.name}') has no throughput recorded",
            hint="place an eval run (`frugal runs --kind eval`) or a fine-tune",
        )
    tput = float(tput)
    batch = int(ev.get("batch_size") or 1)
    p99_ms = float(ev.get("latency_ms_p99") or batch / tput * 1e3)
    precision = precision_of(str(ev.get("model", "")))
    device = str(ev.get("device") or "cpu")
    size = float(ev.get("size_bytes") or 0)
    if size <= 0:
        raise BadInput(f"run {record.id[:12]} has no model size recorded (size_bytes)")
    tokens = int(
        tokens_per_request
        or ev.get("tokens_per_request")
        or cat["defaults"].get("place_tokens_per_request", 64)
    )
    work = rl.Workload(
        flops_per_request=2.0 * size / _BYTES_PER_PARAM[precision] * tokens,
        weight_bytes=size,
        batch_size=batch,
        precision=precision,
    )
    measured = _measured_peak(cat, record, device, ev.get("threads"), precision)
    overhead_ms = float(
        cat["defaults"].get(
            "place_overhead_ms_gpu" if device.startswith("cuda") else "place_overhead_ms_cpu", 1.0
        )
    )
    batch_s = batch / tput
    eff, overhead_s = rl.calibrate(work, measured, batch_s, overhead_ms / 1e3)
    need = float(ev.get("peak_memory_bytes") or 0)
    instance = str(ev.get("instance") or "auto")
    rows: list[Row] = []
    # the measured row: this run's hardware at the price it was recorded with
    usd_h: float | None = float(ev.get("usd_per_hour") or 0.0)
    factor, reason = 1.0, ""
    if spot:
        usd_h, factor, reason = (
            _price(cat, instance, True, measured, False)
            if instance in cat["instances"]
            else (None, 1.0, "no spot price for this run's instance")
        )
    if not spot and ev.get("cost_usd_per_1m") is not None:
        usd: float | None = float(ev["cost_usd_per_1m"])  # as recorded (local: energy cost)
    else:
        usd = 1e6 / (tput * 3600.0) * usd_h * factor if usd_h is not None else None
    why = reason or _meets(tput, p99_ms, slo)
    rows.append(
        Row(
            instance=f"{instance} (this run's hardware)",
            label="measured",
            price="spot" if spot else "on-demand",
            usd_per_hour=usd_h,
            throughput_per_s=tput,
            latency_ms_p99=p99_ms,
            wall_s=None,
            usd=usd,
            meets=not why and usd is not None,
            reason=why,
            inputs={"hardware": measured.describe(), "batch_size": batch, "precision": precision},
        )
    )
    calibrated_on = (
        f"{measured.describe()}: {batch_s * 1e3:.2f} ms per batch of {batch} (run {record.id[:12]})"
    )
    for name in names:
        peak = rl.instance_peak(cat, name, precision)
        usd_h, factor, reason = _price(cat, name, spot, peak, False)
        if peak is None:
            rows.append(_excluded(name, spot, usd_h, "no chip figures in the catalog"))
            continue
        replicas = peak.units if peak.kind == "gpu" else 1.0
        unit_peak = (
            rl.chip_peak(peak.chip, cat["chips"][peak.chip], precision, 1.0, peak.memory_bytes)
            if peak.kind == "gpu"
            else peak
        )
        if need and unit_peak.memory_bytes and need > unit_peak.memory_bytes:
            rows.append(_excluded(name, spot, usd_h, "the model does not fit in its memory"))
            continue
        t = rl.batch_time_s(work, unit_peak, eff, overhead_s)
        rate = batch / t * replicas
        p99 = p99_ms * t / batch_s
        cost = usd_h * factor / (rate * 3600.0) * 1e6 if usd_h is not None else None
        why = reason or _meets(rate, p99, slo)
        rows.append(
            Row(
                instance=name,
                label="predicted",
                price="spot" if spot else "on-demand",
                usd_per_hour=usd_h,
                throughput_per_s=rate,
                latency_ms_p99=p99,
                wall_s=None,
                usd=cost,
                meets=not why and cost is not None,
                reason=why,
                approx=unit_peak.approx or bool(cat["instances"][name].get("approx")),
                inputs={
                    "model": "roofline",
                    "chip": peak.describe(),
                    "bound": work.bound(unit_peak),
                    "efficiency": eff,
                    "overhead_ms": overhead_s * 1e3,
                    "flops_per_request": work.flops_per_request,
                    "tokens_per_request": tokens,
                    "weight_bytes": work.weight_bytes,
                    "replicas": replicas,
                    "spot_hours_per_useful_hour": factor,
                    "calibrated_on": calibrated_on,
                },
            )
        )
    return rows


def _excluded(name: str, spot: bool, usd_h: float | None, reason: str) -> Row:
    return Row(
        instance=name,
        label="predicted",
        price="spot" if spot else "on-demand",
        usd_per_hour=usd_h,
        throughput_per_s=None,
        latency_ms_p99=None,
        wall_s=None,
        usd=None,
        meets=False,
        reason=reason,
    )


def _training_rows(
    record: RunRecord, cat: dict[str, Any], names: list[str], spot: bool, slo: dict[str, float]
) -> list[Row]:
    if slo:
        raise BadInput(
            "--slo-p99-ms and --min-throughput apply to serving runs, not a training run",
            hint="place a training run without them",
        )
    usage = record.usage
    if usage is None or not usage.wall_s > 0 or record.status != "finished":
        raise BadInput(
            f"run {record.id[:12]} ({record.kind}) has no finished wall time to place",
            hint="place a finished fine-tune or an eval run",
        )
    precision = "bf16" if str(record.params.get("precision", "")) in ("bf16", "fp16") else "fp32"
    device = str(record.params.get("device") or "cpu")
    measured = _measured_peak(cat, record, device, None, precision)
    rows: list[Row] = []
    usd_h: float | None = usage.usd_per_hour
    factor, reason = 1.0, ""
    if spot:
        usd_h, factor, reason = (
            _price(cat, usage.instance, True, measured, True)
            if usage.instance in cat["instances"]
            else (None, 1.0, "no spot price for this run's instance")
        )
    rows.append(
        Row(
            instance=f"{usage.instance} (this run's hardware)",
            label="measured",
            price="spot" if spot else "on-demand",
            usd_per_hour=usd_h,
            throughput_per_s=None,
            latency_ms_p99=None,
            wall_s=usage.wall_s,
            usd=usage.wall_s / 3600.0 * usd_h * factor if usd_h is not None else None,
            meets=not reason and usd_h is not None,
            reason=reason,
            inputs={"hardware": measured.describe(), "precision": precision},
        )
    )
    for name in names:
        peak = rl.instance_peak(cat, name, precision)
        usd_h, factor, reason = _price(cat, name, spot, peak, True)
        if peak is None:
            rows.append(_excluded(name, spot, usd_h, "no chip figures in the catalog"))
            continue
        wall = usage.wall_s * measured.flops_per_s / peak.flops_per_s
        cost = wall / 3600.0 * usd_h * factor if usd_h is not None else None
        rows.append(
            Row(
                instance=name,
                label="predicted",
                price="spot" if spot else "on-demand",
                usd_per_hour=usd_h,
                throughput_per_s=None,
                latency_ms_p99=None,
                wall_s=wall,
                usd=cost,
                meets=not reason and cost is not None,
                reason=reason,
                approx=peak.approx or bool(cat["instances"][name].get("approx")),
                inputs={
                    "model": "compute-bound scaling",
                    "chip": peak.describe(),
                    "measured": measured.describe(),
                    "spot_hours_per_useful_hour": factor,
                    "checkpoint_minutes": cat["spot"].get("checkpoint_minutes") if spot else None,
                },
            )
        )
    return rows


__all__ = ["Placement", "Row", "place", "precision_of", "select_instances"]
