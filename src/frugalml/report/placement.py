"""Placement: where a measured workload is cheapest to run (``frugal place``).

From one measured run (an ``eval``: throughput and batch latency; a fine-tune: wall time),
every catalog instance gets a row with its throughput, p99 batch latency and $ per 1M
requests (or $ per training run). The run's own hardware is **measured**; every other row is
a **prediction** of the roofline model in :mod:`frugalml.measure.roofline`, calibrated on the
measured run, and carries its inputs (chip peaks, bound, efficiency, overhead, which of them
were measured and which stated).

Stated rules:

- a GPU instance serves one batch per GPU and runs its GPUs as replicas (throughput x GPUs);
  a CPU instance runs one batch on all its physical cores;
- an encoder eval that recorded ``latency_ms_batch1`` is calibrated on the line through its
  batch-1 and batch-B times (overhead and efficiency measured); an older one on its batch time
  with the catalog's stated overhead; a causal-LM eval on its batch-1 decode step and its
  copy-probe bandwidth, per 1M output tokens (a request is one output token);
- the overhead per forward is carried unchanged to every instance; a measured bandwidth
  fraction above 1 (this machine beats the catalog's per-core share) is carried only to
  instances of the same chip, others get at most their catalog bandwidth;
- a training run is compute-bound: its time scales with the peak FLOP/s (all GPUs, data
  parallel);
- ``--min-throughput`` is what one instance must serve; ``--slo-p99-ms`` bounds the p99 batch
  latency;
- ``--spot`` prices at the catalog's spot price times the expected hours per useful hour:
  ``1 + interruptions_per_hour x restart_h`` (serving) or
  ``1 + interruptions_per_hour x (checkpoint_h / 2 + restart_h)`` (training).
"""

from __future__ import annotations

import dataclasses
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


HERE = " (this run's hardware)"


def _bare(row: Row) -> str:
    """The instance name of a row (the measured row's without its suffix)."""
    return row.instance.removesuffix(HERE)


@dataclass(frozen=True)
class PlacementChange:
    """Moving a workload from one instance to another: both rows, labelled measured or
    predicted, at the placement's SLO, with the catalog's age."""

    origin: Row
    target: Row
    unit: str
    slo: dict[str, float]
    catalog_age: str
    run_id: str

    @property
    def cut(self) -> float | None:
        """The fraction of $ per unit the move saves (negative: it costs more)."""
        a, b = self.origin.usd, self.target.usd
        return None if a is None or b is None or a <= 0 else 1.0 - b / a

    def statement(self) -> str:
        """ "moving this workload from X (measured, $a per 1M requests) to Y (predicted, $b)
        cuts $ per 1M requests by Z% at the same SLO (...) (prices checked ...)"."""
        o, t = self.origin, self.target
        age = f"({self.catalog_age})"
        if o.usd is None or t.usd is None:
            missing = o if o.usd is None else t
            return (
                f"moving this workload from {o.instance} ({o.label}) to {t.instance} "
                f"({t.label}) cannot be priced: {missing.instance} has no $ per {self.unit} "
                f"({missing.reason or 'no price'}) {age}"
            )
        cut = self.cut
        verb = "cuts" if cut is None or cut >= 0 else "raises"
        by = f"by {abs(cut):.0%}" if cut is not None else "(from $0)"
        head = (
            f"moving this workload from {o.instance} ({o.label}, ${o.usd:.4g} per "
            f"{self.unit}) to {t.instance} ({t.label}, ${t.usd:.4g}) {verb} $ per "
            f"{self.unit} {by}"
        )
        if not self.slo:
            return f"{head} with no SLO given {age}"
        slo = _slo_text(self.slo)
        misses = [r for r in (t, o) if not r.meets]
        if not misses:
            return f"{head} at the same SLO ({slo}) {age}"
        why = "; ".join(f"{r.instance} misses it: {r.reason or 'no figures'}" for r in misses)
        return f"{head}, not at the same SLO ({slo}; {why}) {age}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "statement": self.statement(),
            "run_id": self.run_id,
            "unit": self.unit,
            "slo": self.slo,
            "catalog_age": self.catalog_age,
            "cut": self.cut,
            "from": asdict(self.origin),
            "to": asdict(self.target),
        }


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
        """The placement change from this run's hardware to the cheapest instance that meets
        the SLO, each side labelled measured or predicted (one sentence, the catalog's age
        at its end)."""
        here = next((r for r in self.rows if r.label == "measured"), None)
        best = self.best
        if here is None or best is here or here.usd is None or best.usd is None:
            slo = f"at the same SLO ({_slo_text(self.slo)})" if self.slo else "with no SLO given"
            return (
                f"this run's hardware is the cheapest that meets the SLO, {slo} "
                f"({self.catalog_age})"
            )
        return self.change().statement()

    def find(self, name: str) -> Row:
        """The row of instance ``name``: the measured row when ``name`` is the instance the
        run was measured on (measured hardware is exact), else its predicted row."""
        rows = [r for r in self.rows if r.instance == name or _bare(r) == name]
        if not rows:
            raise BadInput(
                f"instance '{name}' is not in this placement",
                hint="run `frugal prices` for the catalog's names",
            )
        return next((r for r in rows if r.label == "measured"), rows[0])

    def change(self, origin: str | None = None, target: str | None = None) -> PlacementChange:
        """Moving the workload from ``origin`` (default: this run's measured hardware) to
        ``target``: an instance name, or names/globs (``aws/*,gcp/g2-*``) of which the
        cheapest that meets the SLO is taken (default: the cheapest of the placement)."""
        here = next((r for r in self.rows if r.label == "measured"), None)
        if origin is None and here is None:
            raise BadInput("this placement has no measured row to move from")
        start = self.find(origin) if origin is not None else here
        assert start is not None
        if target is None:
            ok = [r for r in self.rows if r.meets and r is not start]
        elif any(c in target for c in "*?[,"):
            patterns = [p.strip() for p in target.split(",") if p.strip()]
            ok = [
                r
                for r in self.rows
                if r is not start and any(fnmatch.fnmatchcase(_bare(r), p) for p in patterns)
            ]
            if not ok:
                raise BadInput(
                    f"no instance of this placement matches '{target}'",
                    hint="run `frugal prices` for the catalog's names",
                )
            ok = sorted(ok, key=lambda r: (not r.meets, r.usd is None, r.usd or 0.0, r.instance))
        else:
            ok = [self.find(target)]
        if not ok:
            raise BadInput(
                f"no other instance meets the SLO ({_slo_text(self.slo) or 'none'})",
                hint="name one with --to, or loosen the SLO",
            )
        return PlacementChange(
            origin=start,
            target=ok[0],
            unit=self.unit,
            slo=self.slo,
            catalog_age=self.catalog_age,
            run_id=self.run_id,
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
    require_one: bool = True,
) -> Placement:
    """Rank ``instances`` of catalog ``cat`` for the workload measured by ``record``.

    Raises ``BadInput`` (one line) for a run with no throughput or wall time, unknown
    instance names, hardware with no peak figures, or an SLO no instance meets (unless
    ``require_one`` is False: the rows are then returned, none meeting it).
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
        unit = "1M output tokens" if _is_lm(record) else "1M requests"
    ok = sorted((r for r in rows if r.meets), key=lambda r: (r.usd or math.inf, r.instance))
    if not ok and require_one:
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
        "t = overhead + max(batch x FLOPs/request / (peak FLOP/s x efficiency), weight bytes "
        "/ (bandwidth x bandwidth fraction)), calibrated on the measured run ("
        + (
            "overhead from its batch-1 decode step minus bytes per token / its copy probe)"
            if _is_lm(record)
            else "overhead and efficiency from its batch-1 and batch-B times when it recorded "
            "both, else a stated overhead)"
        )
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


def placement_change(
    record: RunRecord,
    cat: dict[str, Any],
    *,
    origin: str | None = None,
    target: str | None = None,
    instances: str | None = None,
    **options: Any,
) -> tuple[Placement, PlacementChange]:
    """The placement of ``record``'s workload and the change from ``origin`` (an instance
    name; default: the run's measured hardware) to ``target`` (a name, or names/globs whose
    cheapest row meeting the SLO is taken; default: the cheapest of ``instances``, every
    catalog instance when None). ``options``: :func:`place`'s (SLO, spot, ...). The
    instances named by ``origin``/``target`` are placed even outside ``instances``; a
    target that misses the SLO is stated as missing it."""
    wanted = [p for p in (instances, target) if p]
    if not wanted:
        wanted = ["*"]  # the cheapest in the whole catalog
    here = _recorded_instance(record)  # the measured row's name: placed in any case
    names = [
        n.strip()
        for n in ",".join(wanted).split(",")
        if n.strip() and (n.strip() != here or n.strip() in cat["instances"])
    ]
    if origin is not None and origin in cat["instances"] and origin != "local":
        names.append(origin)
    elif origin is not None and origin != here:
        raise BadInput(
            f"unknown instance '{origin}' to move from",
            hint=f"name a catalog instance (`frugal prices`) or the one the run was measured on "
            f"({here})",
        )
    placement = place(
        record,
        cat,
        instances=",".join(dict.fromkeys(names)) or None,
        require_one=target is not None,
        **options,
    )
    return placement, placement.change(origin, target)


def _recorded_instance(record: RunRecord) -> str:
    """The instance a run was priced at (its measured row's name)."""
    ev = record.params.get("eval") if isinstance(record.params.get("eval"), dict) else None
    if ev is not None and record.kind not in TRAINING_KINDS:
        return str(ev.get("instance") or "auto")
    return record.usage.instance if record.usage is not None else "auto"


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
    measured = _measured_peak(cat, record, device, ev.get("threads"), precision)
    overhead_ms = float(
        cat["defaults"].get(
            "place_overhead_ms_gpu" if device.startswith("cuda") else "place_overhead_ms_cpu", 1.0
        )
    )
    batch_s = batch / tput
    if _is_lm(record):
        tokens = 1
        work, cal = _lm_calibration(ev, measured, precision, batch, batch_s, overhead_ms)
    else:
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
        single = ev.get("latency_ms_batch1")
        cal = rl.calibrate(
            work,
            measured,
            batch_s,
            overhead_s=overhead_ms / 1e3,
            single_s=float(single) / 1e3 if single and math.isfinite(float(single)) else None,
        )
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
            instance=f"{instance}{HERE}",
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
        rows.append(
            _predicted_row(
                cat, name, spot, precision, work, cal, measured.chip, need, batch, batch_s,
                p99_ms, slo, tokens, calibrated_on,
            )
        )  # fmt: skip
    return rows


def _is_lm(record: RunRecord) -> bool:
    """A causal-LM eval: it recorded its decode rate, bytes per token and copy probe."""
    ev = record.params.get("eval") if isinstance(record.params.get("eval"), dict) else {}
    keys = ("decode_tokens_per_s", "bytes_per_token", "memory_bandwidth_bytes_per_s")
    return record.kind not in TRAINING_KINDS and all((ev or {}).get(k) for k in keys)


def _lm_calibration(
    ev: dict[str, Any],
    measured: rl.Peak,
    precision: str,
    batch: int,
    batch_s: float,
    overhead_ms: float,
) -> tuple[rl.Workload, rl.Calibration]:
    """A causal LM's workload per decode step of ``batch`` tokens (2 x parameters FLOPs per
    token; the weights + each sequence's KV cache read per step) and its calibration on the
    batch-1 decode step with the run's copy probe (``roofline.calibrate``'s ``decode``)."""
    per_token = float(ev["bytes_per_token"])
    kv = float(ev.get("kv_bytes_per_token") or 0.0)
    weights = float(ev.get("weights_bytes") or per_token - kv)
    flops = 2.0 * weights / _BYTES_PER_PARAM[precision]
    one = rl.Workload(flops, weights + kv, 1, precision)
    cal = rl.calibrate(
        one,
        measured,
        batch_s if batch == 1 else 1.0 / float(ev["decode_tokens_per_s"]),
        overhead_s=overhead_ms / 1e3,
        single_s=1.0 / float(ev["decode_tokens_per_s"]),
        bandwidth_bytes_per_s=float(ev["memory_bandwidth_bytes_per_s"]),
        decode=True,
    )
    return rl.Workload(flops, weights + batch * kv, batch, precision), cal


def _predicted_row(
    cat: dict[str, Any],
    name: str,
    spot: bool,
    precision: str,
    work: rl.Workload,
    cal: rl.Calibration,
    measured_chip: str,
    need: float,
    batch: int,
    batch_s: float,
    p99_ms: float,
    slo: dict[str, float],
    tokens: int,
    calibrated_on: str,
) -> Row:
    """One catalog instance, predicted by the roofline calibrated on the measured run
    (GPU instances: one replica per GPU), or excluded with the reason."""
    peak = rl.instance_peak(cat, name, precision)
    usd_h, factor, reason = _price(cat, name, spot, peak, False)
    if peak is None:
        return _excluded(name, spot, usd_h, "no chip figures in the catalog")
    replicas = peak.units if peak.kind == "gpu" else 1.0
    unit_peak = (
        rl.chip_peak(peak.chip, cat["chips"][peak.chip], precision, 1.0, peak.memory_bytes)
        if peak.kind == "gpu"
        else peak
    )
    if need and unit_peak.memory_bytes and need > unit_peak.memory_bytes:
        return _excluded(name, spot, usd_h, "the model does not fit in its memory")
    if peak.chip != measured_chip and cal.bw_fraction > 1.0:
        cal = dataclasses.replace(cal, bw_fraction=1.0)  # the module docstring's rule
    t = rl.batch_time_s(work, unit_peak, cal)
    rate = batch / t * replicas
    p99 = p99_ms * t / batch_s
    cost = usd_h * factor / (rate * 3600.0) * 1e6 if usd_h is not None else None
    why = reason or _meets(rate, p99, slo)
    return Row(
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
            "bound": work.bound(unit_peak, cal),
            **cal.inputs(),
            "flops_per_request": work.flops_per_request,
            "tokens_per_request": tokens,
            "weight_bytes": work.weight_bytes,
            "replicas": replicas,
            "spot_hours_per_useful_hour": factor,
            "calibrated_on": calibrated_on,
        },
    )


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
            instance=f"{usage.instance}{HERE}",
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


__all__ = [
    "Placement",
    "PlacementChange",
    "Row",
    "place",
    "placement_change",
    "precision_of",
    "select_instances",
]
