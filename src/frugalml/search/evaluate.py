"""The one measurement: quality and cost of one model on one task's data.

``evaluate(model, task, data, ...)`` is what ``frugal eval`` prints and what ``frugal
optimize`` runs on every candidate (the baseline included), so figures are comparable.

Method
------
1. The data is split once, seeded (``tasks.base``): quality is measured on the held-out
   ``score`` half; the ``tune`` half is only for what learns from data (classification probe,
   calibration, distillation).
2. Texts = the score rows' texts (both sides of a pair). They are cut into batches of the
   model's ``batch_size``, sorted by length first when ``length_sort`` is on (less padding;
   outputs return in input order). Tokenization is inside every timed call.
3. Warm-up: the first ``warmup_batches`` batches (the longest) run untimed; their seconds are
   reported apart (``warmup_s``) and include any compilation.
4. Timed: ``repeats`` full passes over the texts, the device synchronised around each batch.
   ``throughput_per_s`` is texts per second, the median over passes. ``latency_ms_p50`` /
   ``latency_ms_p99`` are per-*batch* latencies over every timed batch: the time a request
   waits when it is served in a batch of ``batch_size`` (at ``batch_size=1``, per request).
5. Usage of the timed passes (``frugalml.measure.track.UsageMeter``): energy (RAPL/NVML where
   readable, else an estimate; ``energy_source`` says which), peak memory (the process's peak
   RSS during the timed passes, or the GPU's peak on CUDA), CPU seconds.
6. Cost per 1M requests, a request being one input text: at an hourly-priced instance
   ``cost_usd_per_1m = 1e6 / throughput_per_s / 3600 * usd_per_hour``; on ``local`` hardware
   (no hourly price) the energy instead: ``energy_j_per_1k * 1000 / 3.6e6 * usd_per_kwh``.
   ``energy_j_per_1k = energy_j_of_timed_passes / texts_timed * 1000``.
7. ``size_bytes``: the weight files as saved (ONNX graph or safetensors).

Outputs with NaN or infinity fail the evaluation (``CandidateFailed``).

Per-row results for paired tests
--------------------------------
``EvalResult.items`` holds per-row arrays (similarity: ``pred``, ``gold`` per pair;
classification: ``correct`` per text; fidelity: ``agreement`` per text), in the order of the
score split, which is the same for any two models evaluated on the same data with the same
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
from typing import Any

import numpy as np

from frugalml.data import Dataset, load_data
from frugalml.errors import BadInput, CandidateFailed
from frugalml.models import Model
from frugalml.passes.persist import load
from frugalml.tasks import Task, get_task

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


def reference_outputs(model: Model, task: Task, data: Dataset, seed: int = 0) -> np.ndarray:
    """The original model's outputs on the score split's texts (fidelity's reference)."""
    _tune, score = task.split(data, seed)
    return model.encode(task.texts(score))


def base_reference(model: Model, task: Task, data: Dataset, seed: int = 0) -> np.ndarray:
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
        return reference_outputs(ref_model, task, data, seed)
    return reference_outputs(model, task, data, seed)


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
    warmup_batches: int = 2,
    on_batch: Callable[[int], None] | None = None,
    size_bytes: int | None = None,
    task_options: dict[str, Any] | None = None,
) -> EvalResult:
    """Measure ``model`` on ``task`` over ``data`` (see the module docstring for the method).

    ``model``: a MODEL spec (path, alias) or a loaded ``Model``. ``threads``, ``batch_size``,
    ``length_sort``: override the model's runtime settings (None: keep them; a plain model
    runs batches of 32, length-sorted, on every usable core). ``reference``: fidelity's
    reference outputs for the score split (array), or the original model; by default the
    model's recorded base (a variant) or the model itself. ``size_bytes``: weights size when
    known from a saved folder. ``task_options``: a causal LM's task settings (window,
    stride, windows, new_tokens; ``frugalml.lm.evaluate``).
    """
    from frugalml.measure.hardware import hardware
    from frugalml.measure.prices import resolve
    from frugalml.measure.timing import device_sync
    from frugalml.measure.track import UsageMeter
    from frugalml.models import threads_for

    if repeats < 1:
        raise BadInput("repeats must be at least 1")
    price = resolve(instance, region)  # unknown names fail before any work
    from frugalml.lm import LM_TASKS, is_lm_spec

    if isinstance(task, str) and (task in LM_TASKS or is_lm_spec(model)):
        from frugalml.lm.evaluate import evaluate_lm  # causal LMs: frugalml.lm.evaluate

        lm = load(model, device=device) if not isinstance(model, Model) else model
        lm = with_runtime(lm, threads=threads, batch_size=batch_size)
        if lm.output == "lm" or task in LM_TASKS:
            original = reference if isinstance(reference, Model) else None
            return evaluate_lm(
                lm, task, data, metric=metric, instance=instance, region=region,
                reference=original, seed=seed, repeats=repeats, size_bytes=size_bytes,
                task_options=task_options,
            )  # fmt: skip
        model = lm
    the_task = get_task(task, metric=metric, seed=seed)
    dataset = resolve_data(data)
    the_task.check(dataset)
    loaded = load(model, device=device) if not isinstance(model, Model) else model
    loaded = with_runtime(loaded, threads=threads, batch_size=batch_size, length_sort=length_sort)
    tune, score = the_task.split(dataset, seed)
    ref: np.ndarray | None = None
    if the_task.name == "fidelity":
        if isinstance(reference, Model):
            ref = reference_outputs(reference, the_task, dataset, seed)
        elif reference is not None:
            ref = np.asarray(reference)
        else:
            ref = base_reference(loaded, the_task, dataset, seed)
    ctx = the_task.prepare(loaded, tune, score, reference=ref)
    texts = the_task.texts(score)
    batches = loaded.batches(texts)

    device_sync()
    t0 = time.perf_counter()
    for idx in batches[: max(0, warmup_batches)]:
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
    assert outputs is not None  # split() guarantees rows
    if not np.isfinite(outputs).all():
        bad = int((~np.isfinite(outputs)).any(axis=1).sum())
        raise CandidateFailed(
            f"the model produced NaN or infinite outputs for {bad} of {len(texts)} texts"
        )
    items = the_task.items(outputs, score, ctx)
    quality = the_task.quality_on(items)
    if math.isnan(quality):
        raise CandidateFailed("quality is undefined on this data (constant gold scores?)")

    throughput = float(np.median(pass_rates))
    timed_texts = len(texts) * repeats
    energy_per_1k = usage.energy_j / timed_texts * 1000.0
    kwh_per_1m = energy_per_1k * 1000.0 / 3.6e6
    if price.priced_by_hour:
        cost_per_1m = 1e6 / throughput / 3600.0 * price.usd_per_hour if throughput else math.inf
    else:
        cost_per_1m = kwh_per_1m * price.usd_per_kwh
    lat_ms = np.asarray(latencies) * 1e3
    on_gpu = loaded.device.startswith("cuda")
    return EvalResult(
        task=the_task.name,
        quality=quality,
        metric=the_task.metric,
        higher_is_better=the_task.higher_is_better,
        throughput_per_s=throughput,
        latency_ms_p50=float(np.percentile(lat_ms, 50)),
        latency_ms_p99=float(np.percentile(lat_ms, 99)),
        cost_usd_per_1m=float(cost_per_1m),
        energy_j_per_1k=float(energy_per_1k),
        energy_source=usage.energy_source,
        peak_memory_bytes=int(usage.peak_device_bytes if on_gpu else usage.peak_host_bytes),
        size_bytes=int(size_bytes if size_bytes is not None else loaded.size_bytes()),
        device=loaded.device,
        threads=threads_for(loaded),
        batch_size=loaded.runtime.batch_size,
        length_sort=loaded.runtime.length_sort,
        rows=len(score),
        texts_timed=timed_texts,
        repeats=repeats,
        warmup_s=warmup_s,
        timed_s=float(sum(latencies)),
        cpu_s=usage.cpu_s,
        usd_per_hour=price.usd_per_hour,
        instance=price.instance,
        region=price.region,
        co2_g_per_1m=kwh_per_1m * price.g_co2_per_kwh,
        model=loaded.describe(),
        items=items,
    )
