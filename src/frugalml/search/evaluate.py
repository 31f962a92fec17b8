"""The one measurement: quality and cost of one model on one task's data.

``evaluate(model, task, data, ...)`` is what ``frugal eval`` prints and what ``frugal
optimize`` runs on every candidate (the baseline included), so figures are comparable.

Method
------
1. Which rows are scored (``split``, ``tasks.base``): every row when the task learns nothing
   from the data (similarity, fidelity, a classifier with its own head); when it must learn
   (a probe on a bare encoder) the held-out ``score`` half, the probe fitted on the other.
   ``optimize`` scores its candidates on its ``select`` split and checks its choice on
   ``final``. ``rows_scored``, ``rows_total`` and ``split`` say which.
2. Texts = the scored rows' texts (both sides of a pair). They are cut into batches of the
   model's ``batch_size``, sorted by length first when ``length_sort`` is on (less padding;
   outputs return in input order). Tokenization is inside every timed call.
3. Warm-up: one untimed pass over every batch (or the first ``warmup_batches``, the longest,
   when given); its seconds are reported apart (``warmup_s``) and include any compilation.
   Every batch, because a runtime may compile per input shape: OpenVINO's first pass over
   STS-B ran at half the speed of the next ones when only two batches warmed it up, and that
   one slow pass widened its cost band (the tie rule's noise) until it tied with everything.
4. Timed: ``repeats`` full passes over the texts, the device synchronised around each batch.
   ``throughput_per_s`` is texts per second, the median over passes. ``latency_ms_p50`` /
   ``latency_ms_p99`` are per-*batch* latencies over every timed batch: the time a request
   waits when it is served in a batch of ``batch_size`` (at ``batch_size=1``, per request).
   ``latency_ms_batch1``: after the passes, the mean time of 16 texts run alone (at
   ``batch_size=1``, 1 / throughput); ``frugal place`` splits overhead from compute with it.
5. Usage of the timed passes (``frugalml.measure.track.UsageMeter``): energy (RAPL/NVML where
   readable, else an estimate; ``energy_source`` says which), peak memory (the process's peak
   RSS during the timed passes, or the GPU's peak on CUDA), CPU seconds.
6. Cost per 1M requests, a request being one input text (``Price.per_1m_requests``): at an
   hourly-priced instance ``cost_usd_per_1m = 1e6 / throughput_per_s / 3600 * usd_per_hour``;
   on ``local`` hardware (no hourly price) the energy instead:
   ``energy_j_per_1k * 1000 / 3.6e6 * usd_per_kwh``, where
   ``energy_j_per_1k = energy_j_of_timed_passes / texts_timed * 1000``.
   ``cost_usd_per_1m_low`` / ``_high``: the same cost at the fastest / slowest timed pass
   (the noise band the search's tie rule uses).
7. ``size_bytes``: the weight files as saved (ONNX graph or safetensors).

Outputs with NaN or infinity fail the evaluation (``CandidateFailed``).

Per-row results for paired tests
--------------------------------
``EvalResult.items`` holds per-row arrays (similarity: ``pred``, ``gold`` per pair;
classification: ``correct`` per text; fidelity: ``agreement`` per text), in the order of the
scored rows, which is the same for any two models evaluated on the same data with the same
seed. ``EvalResult.quality_on(indices)`` (or ``frugalml.tasks.quality_on(task, items,
indices)``) recomputes the metric on a resample of row indices, so a paired bootstrap of the
quality *difference* is::

    idx = rng.integers(0, n, n); diff = a.quality_on(idx) - b.quality_on(idx)
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from frugalml.data import Dataset, load_data
from frugalml.errors import BadInput, CandidateFailed
from frugalml.models import Model
from frugalml.passes.persist import load
from frugalml.tasks import Task, get_task
from frugalml.tasks.base import SPLITS

if TYPE_CHECKING:
    from frugalml.measure.prices import Price
    from frugalml.records import Usage

EVAL_KEYS = (
    "quality",
    "metric",
    "higher_is_better",
    "throughput_per_s",
    "latency_ms_p50",
    "latency_ms_p99",
    "cost_usd_per_1m",
    "energy_j_per_1k",
    "energy_source",
    "peak_memory_bytes",
    "size_bytes",
    "device",
    "threads",
)


@dataclass(frozen=True)
class EvalResult:
    """Quality and cost of one model on one task (``to_dict()``: the ``eval --json`` keys)."""

    task: str
    quality: float
    metric: str
    higher_is_better: bool
    throughput_per_s: float
    latency_ms_p50: float
    latency_ms_p99: float
    cost_usd_per_1m: float
    energy_j_per_1k: float
    energy_source: str
    peak_memory_bytes: int
    size_bytes: int
    device: str
    threads: int
    batch_size: int
    length_sort: bool
    rows: int
    texts_timed: int
    repeats: int
    warmup_s: float
    timed_s: float
    cpu_s: float
    usd_per_hour: float
    instance: str
    region: str
    co2_g_per_1m: float
    model: str
    rows_scored: int = 0  # rows whose quality was measured (``rows``: the same, kept for readers)
    rows_total: int = 0  # rows in the data
    split: str = "all"  # which rows were scored: tasks.base.SPLITS
    cost_usd_per_1m_low: float = math.nan  # the cost at the fastest timed pass
    cost_usd_per_1m_high: float = math.nan  # ... and at the slowest
    # mean time of one text alone (frugal place's overhead); None: not measured (a causal LM)
    latency_ms_batch1: float | None = None
    items: dict[str, np.ndarray] = field(default_factory=dict, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The eval JSON keys first, then the extra figures (no per-row items)."""
        data = {k: getattr(self, k) for k in EVAL_KEYS}
        for f in dataclasses.fields(self):
            if f.name not in data and f.name != "items":
                data[f.name] = getattr(self, f.name)
        return data

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], items: dict[str, np.ndarray] | None = None
    ) -> EvalResult:
        names = {f.name for f in dataclasses.fields(cls)} - {"items"}
        return cls(**{k: data[k] for k in names if k in data}, items=items or {})

    def quality_on(self, indices: Sequence[int] | np.ndarray | None = None) -> float:
        """The metric in points on a subset/resample of the scored rows (``items``)."""
        return get_task(self.task, metric=self.metric).quality_on(self.items, indices)

    def save(self, path: str | Path) -> None:
        """``path.json`` (figures) and ``path.npz`` (per-row items)."""
        p = Path(path)
        p.with_suffix(".json").write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        np.savez(p.with_suffix(".npz"), **self.items)  # type: ignore[arg-type]

    @classmethod
    def read(cls, path: str | Path) -> EvalResult:
        p = Path(path)
        data = json.loads(p.with_suffix(".json").read_text())
        with np.load(p.with_suffix(".npz")) as npz:
            items = {k: npz[k] for k in npz.files}
        return cls.from_dict(data, items)


def resolve_data(data: str | Path | Dataset, **options: Any) -> Dataset:
    return data if isinstance(data, Dataset) else load_data(data, **options)


def with_runtime(
    model: Model,
    *,
    threads: int | None = None,
    batch_size: int | None = None,
    length_sort: bool | None = None,
) -> Model:
    rt = model.runtime
    changes: dict[str, Any] = {}
    if threads is not None:
        if threads < 1:
            raise BadInput("--threads must be at least 1")
        changes["threads"] = threads
    if batch_size is not None:
        if batch_size < 1:
            raise BadInput("--batch-size must be at least 1")
        changes["batch_size"] = batch_size
    if length_sort is not None:
        changes["length_sort"] = length_sort
    return model if not changes else model.evolve(runtime=dataclasses.replace(rt, **changes))


def reference_outputs(
    model: Model, task: Task, data: Dataset, seed: int = 0, split: str = "auto"
) -> np.ndarray:
    """The original model's outputs on the scored rows' texts (a reference for a task that
    ``needs_reference``); ``split`` as in ``evaluate``."""
    _fit, score = task.parts(data, resolve_split(task, model, split), seed)
    return model.encode(task.texts(score))


def base_reference(
    model: Model, task: Task, data: Dataset, seed: int = 0, split: str = "auto"
) -> np.ndarray:
    """Fidelity reference for a saved variant: its manifest's base model; else itself."""
    base = model.base if model.passes else None
    if base:
        try:
            ref_model = load(base, device=model.device)
        except BadInput as e:
            raise BadInput(
                f"fidelity compares with the original model '{base}', which cannot "
                f"be loaded: {e.message}"
            ) from e
        return reference_outputs(ref_model, task, data, seed, split)
    return reference_outputs(model, task, data, seed, split)


def evaluate(
    model: str | Path | Model,
    task: str | Task,
    data: str | Path | Dataset,
    *,
    metric: str | None = None,
    device: str = "cpu",
    threads: int | None = None,
    batch_size: int | None = None,
    length_sort: bool | None = None,
    instance: str | None = None,
    region: str | None = None,
    reference: np.ndarray | Model | None = None,
    seed: int = 0,
    repeats: int = 3,
    warmup_batches: int | None = None,
    on_batch: Callable[[int], None] | None = None,
    size_bytes: int | None = None,
    split: str = "auto",
) -> EvalResult:
    """Measure ``model`` on ``task`` over ``data`` (see the module docstring for the method).

    ``model``: a MODEL spec (path, alias) or a loaded ``Model``. ``threads``, ``batch_size``,
    ``length_sort``: override the model's runtime settings (None: keep them; a plain model
    runs batches of 32, length-sorted, on every usable core). ``reference``: the reference
    outputs of a task that ``needs_reference`` for the scored rows (array), or the original
    model; by default the model's recorded base (a variant) or the model itself.
    ``size_bytes``: weights size when known from a saved folder. ``split``: which rows are
    scored (``tasks.base.SPLITS``); ``auto`` scores every row unless the task learns from the
    data for this model (a probe), then the held-out half.
    """
    from frugalml.measure.prices import resolve

    if repeats < 1:
        raise BadInput("repeats must be at least 1")
    price = resolve(instance, region)  # unknown names fail before any work
    the_task = get_task(task, metric=metric, seed=seed)
    dataset = resolve_data(data)
    the_task.check(dataset)
    loaded = load(model, device=device) if not isinstance(model, Model) else model
    loaded = with_runtime(loaded, threads=threads, batch_size=batch_size, length_sort=length_sort)
    split = resolve_split(the_task, loaded, split)
    fit, score = the_task.parts(dataset, split, seed)
    ref = _reference_for(loaded, the_task, dataset, reference, seed, split)
    ctx = the_task.prepare(loaded, fit, score, reference=ref)
    texts = the_task.texts(score)
    timed = _timed_passes(loaded, texts, repeats, warmup_batches, price, on_batch)
    items = the_task.items(timed.outputs, score, ctx)
    quality = the_task.quality_on(items)
    if math.isnan(quality):
        raise CandidateFailed("quality is undefined on this data (constant gold scores?)")
    return _result(
        loaded, the_task, price, timed, quality, items,
        rows=(len(score), len(dataset)), split=split, size_bytes=size_bytes,
    )  # fmt: skip


def resolve_split(task: Task, model: Model, split: str) -> str:
    """The split ``evaluate`` scores: ``auto`` → every row, unless the task learns from data."""
    if split == "auto":
        return task.auto_split(model)
    if split not in SPLITS:
        raise BadInput(f"unknown split '{split}'", hint=f"use one of auto, {', '.join(SPLITS)}")
    if split == "all" and task.learns_from_data(model):
        raise BadInput(
            f"the {task.name} task fits a probe on rows for this model; scoring every row "
            "would score it on the rows it was fitted on",
            hint="use split 'score' (the held-out half)",
        )
    return split


def _reference_for(
    loaded: Model,
    task: Task,
    data: Dataset,
    reference: np.ndarray | Model | None,
    seed: int,
    split: str,
) -> np.ndarray | None:
    if not task.needs_reference:
        return None
    if isinstance(reference, Model):
        return reference_outputs(reference, task, data, seed, split)
    if reference is not None:
        return np.asarray(reference)
    return base_reference(loaded, task, data, seed, split)


@dataclass
class _Timed:
    """What the timed passes measured: outputs in input order, per-batch seconds, pass rates."""

    outputs: np.ndarray
    latencies_s: list[float]
    pass_rates: list[float]
    warmup_s: float
    usage: Usage
    texts: int
    repeats: int
    single_s: float | None = None


SINGLE_TEXTS = 16  # texts timed alone after the passes (placement: overhead per forward)


def _single_s(loaded: Model, texts: list[str], sync: Callable[[], None]) -> float:
    """Mean seconds of one text run alone: ``SINGLE_TEXTS`` texts spread over the input order
    (after one untimed), outside the metered passes."""
    picked = texts[:: max(1, len(texts) // SINGLE_TEXTS)][:SINGLE_TEXTS]
    loaded.run_batch(picked[:1])
    start = time.perf_counter()
    for text in picked:
        loaded.run_batch([text])
        sync()
    return (time.perf_counter() - start) / len(picked)


def _timed_passes(
    loaded: Model,
    texts: list[str],
    repeats: int,
    warmup_batches: int | None,
    price: Price,
    on_batch: Callable[[int], None] | None,
) -> _Timed:
    """Warm-up batches (untimed; None: all of them), then ``repeats`` synchronised passes
    under a UsageMeter."""
    from frugalml.measure.hardware import hardware
    from frugalml.measure.timing import device_sync
    from frugalml.measure.track import UsageMeter

    batches = loaded.batches(texts)
    device_sync()
    t0 = time.perf_counter()
    for idx in batches if warmup_batches is None else batches[: max(0, warmup_batches)]:
        loaded.run_batch([texts[i] for i in idx])
    device_sync()
    warmup_s = time.perf_counter() - t0
    outputs: np.ndarray | None = None
    latencies: list[float] = []
    pass_rates: list[float] = []
    meter = UsageMeter(price, hardware())
    meter.start()
    for _ in range(repeats):
        pass_s = 0.0
        for idx in batches:
            start = time.perf_counter()
            rows = loaded.run_batch([texts[i] for i in idx])
            device_sync()
            dt = time.perf_counter() - start
            latencies.append(dt)
            pass_s += dt
            if outputs is None:
                outputs = np.empty((len(texts), rows.shape[1]), dtype=np.float32)
            outputs[idx] = rows
            if on_batch:
                on_batch(len(idx))
        pass_rates.append(len(texts) / pass_s if pass_s > 0 else 0.0)
    usage = meter.stop()
    assert outputs is not None  # parts() guarantees rows
    if not np.isfinite(outputs).all():
        bad = int((~np.isfinite(outputs)).any(axis=1).sum())
        raise CandidateFailed(
            f"the model produced NaN or infinite outputs for {bad} of {len(texts)} texts"
        )
    single = _single_s(loaded, texts, device_sync) if loaded.runtime.batch_size > 1 else None
    return _Timed(outputs, latencies, pass_rates, warmup_s, usage, len(texts), repeats, single)


def _result(
    loaded: Model,
    task: Task,
    price: Price,
    timed: _Timed,
    quality: float,
    items: dict[str, np.ndarray],
    *,
    rows: tuple[int, int],
    split: str,
    size_bytes: int | None,
) -> EvalResult:
    """The figures of one evaluation: rates are medians over passes, cost from the one price
    method (``Price.per_1m_requests``), its interval from the slowest and fastest pass."""
    from frugalml.models import threads_for

    throughput = float(np.median(timed.pass_rates))
    timed_texts = timed.texts * timed.repeats
    energy_per_1k = timed.usage.energy_j / timed_texts * 1000.0
    kwh_per_1m = energy_per_1k * 1000.0 / 3.6e6
    cost = float(price.per_1m_requests(throughput, energy_per_1k))
    # a pass k times slower costs k times more (per hour or per joule alike)
    slow, fast = min(timed.pass_rates), max(timed.pass_rates)
    cost_low = cost * throughput / fast if fast > 0 else cost
    cost_high = cost * throughput / slow if slow > 0 else math.inf
    lat_ms = np.asarray(timed.latencies_s) * 1e3
    on_gpu = loaded.device.startswith("cuda")
    usage = timed.usage
    return EvalResult(
        task=task.name,
        quality=quality,
        metric=task.metric,
        higher_is_better=task.higher_is_better,
        throughput_per_s=throughput,
        latency_ms_p50=float(np.percentile(lat_ms, 50)),
        latency_ms_p99=float(np.percentile(lat_ms, 99)),
        cost_usd_per_1m=cost,
        energy_j_per_1k=float(energy_per_1k),
        energy_source=usage.energy_source,
        peak_memory_bytes=int(usage.peak_device_bytes if on_gpu else usage.peak_host_bytes),
        size_bytes=int(size_bytes if size_bytes is not None else loaded.size_bytes()),
        device=loaded.device,
        threads=threads_for(loaded),
        batch_size=loaded.runtime.batch_size,
        length_sort=loaded.runtime.length_sort,
        rows=rows[0],
        texts_timed=timed_texts,
        repeats=timed.repeats,
        warmup_s=timed.warmup_s,
        timed_s=float(sum(timed.latencies_s)),
        cpu_s=usage.cpu_s,
        usd_per_hour=price.usd_per_hour,
        instance=price.instance,
        region=price.region,
        co2_g_per_1m=kwh_per_1m * price.g_co2_per_kwh,
        model=loaded.describe(),
        rows_scored=rows[0],
        rows_total=rows[1],
        split=split,
        cost_usd_per_1m_low=float(cost_low),
        cost_usd_per_1m_high=float(cost_high),
        latency_ms_batch1=1e3 * (timed.single_s or 1.0 / throughput) if throughput > 0 else None,
        items=items,
    )
