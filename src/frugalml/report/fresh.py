"""Sides evaluated now: models measured in one process, alternating, and recorded.

``evaluate_alternating(["minilm", "out/best"], task, data)`` loads every model first (a
missing one fails before any work), then runs ``rounds`` rounds of one timed pass per model in
the order A B, B A, A B … (a slow moment of a shared machine, or a drift, hits both), and
combines each model's rounds (:func:`combine`). ``record_eval`` keeps each result in the
ledger as an ``eval`` run with its per-row outputs, so the statement can be rebuilt from the
ledger alone.
"""

from __future__ import annotations

import hashlib
import math
import statistics
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from frugalml.errors import BadInput
from frugalml.report.sources import save_items, side_from_record
from frugalml.report.statement import Side

if TYPE_CHECKING:
    from frugalml.ledger import Ledger
    from frugalml.search.evaluate import EvalResult


def data_fingerprint(path: str | Path) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def combine(
    results: Sequence[EvalResult], priced_by_hour: bool, usd_per_kwh: float, g_co2_per_kwh: float
) -> EvalResult:
    """One result from several rounds of one model: medians of the rate figures, the peak of
    memory, sums of counted work; cost and CO2 recomputed from the median figures."""
    first = results[0]
    tput = statistics.median(r.throughput_per_s for r in results)
    energy = statistics.median(r.energy_j_per_1k for r in results)
    kwh_per_1m = energy * 1000.0 / 3.6e6
    if priced_by_hour:
        cost = 1e6 / tput / 3600.0 * first.usd_per_hour if tput else math.inf
    else:
        cost = kwh_per_1m * usd_per_kwh
    sources = {r.energy_source for r in results}
    return replace(
        first,
        throughput_per_s=tput,
        latency_ms_p50=statistics.median(r.latency_ms_p50 for r in results),
        latency_ms_p99=statistics.median(r.latency_ms_p99 for r in results),
        energy_j_per_1k=energy,
        cost_usd_per_1m=float(cost),
        co2_g_per_1m=kwh_per_1m * g_co2_per_kwh,
        peak_memory_bytes=max(r.peak_memory_bytes for r in results),
        texts_timed=sum(r.texts_timed for r in results),
        repeats=sum(r.repeats for r in results),
        timed_s=sum(r.timed_s for r in results),
        cpu_s=sum(r.cpu_s for r in results),
        energy_source=first.energy_source if len(sources) == 1 else "estimate",
    )


def evaluate_alternating(
    specs: Sequence[str],
    task: str,
    data: str,
    *,
    rounds: int = 3,
    device: str = "cpu",
    threads: int | None = None,
    batch_size: int | None = None,
    instance: str | None = None,
    region: str | None = None,
    seed: int = 0,
    on_step: Callable[[int, int, str], None] | None = None,
) -> list[EvalResult]:
    """Evaluate models in one process, alternating, for ``rounds`` rounds (see the module).

    Quality is the same every round (same split, same seed); the per-row outputs kept are the
    first round's. A task that ``needs_reference`` (fidelity) compares with the first model.
    """
    from frugalml.data import load_data
    from frugalml.measure.prices import resolve
    from frugalml.models import load, resolve_path
    from frugalml.search.evaluate import evaluate, reference_outputs
    from frugalml.tasks import get_task

    if rounds < 1:
        raise BadInput("--rounds must be at least 1")
    for spec in specs:  # a missing model fails before anything is loaded
        resolve_path(spec)
    price = resolve(instance, region)
    the_task = get_task(task, seed=seed)
    dataset = load_data(data)
    the_task.check(dataset)
    models = [load(s, device=device) for s in specs]
    reference = None
    if the_task.needs_reference:
        reference = reference_outputs(models[0], the_task, dataset, seed)
    per: list[list[EvalResult]] = [[] for _ in models]
    order = list(range(len(models)))
    step, total = 0, rounds * len(models)
    for r in range(rounds):
        for i in order if r % 2 == 0 else order[::-1]:
            if on_step:
                on_step(step, total, str(specs[i]))
            per[i].append(
                evaluate(
                    models[i], the_task, dataset, device=device, threads=threads,
                    batch_size=batch_size, instance=instance, region=region,
                    reference=reference, seed=seed, repeats=1,
                )
            )  # fmt: skip
            step += 1
    return [combine(rs, price.priced_by_hour, price.usd_per_kwh, price.g_co2_per_kwh) for rs in per]


def record_eval(
    book: Ledger, result: EvalResult, *, spec: str, data: str, group: str, rounds: int
) -> str:
    """Keep an evaluation in the ledger (kind ``eval``) with its per-row outputs; its id."""
    from frugalml.measure.hardware import environment, hardware

    path = Path(spec).expanduser()
    model = str(path.absolute()) if path.exists() else spec
    params = {
        "model": model,
        "task": result.task,
        "data": str(Path(data).absolute()),
        "data_sha256": data_fingerprint(data),
        "compare_group": group,
        "rounds": rounds,
        "eval": result.to_dict(),
    }
    run_id = book.start_run(
        f"eval {path.name or spec}", kind="eval", params=params, hardware=hardware(),
        environment=environment(),
    )  # fmt: skip
    try:
        items = save_items(result.items, run_id)
        book.log_quality(run_id, **{result.metric: result.quality})
        book.log_artifacts(run_id, items=str(items))
    except BaseException as e:
        book.finish_run(run_id, status="failed", error=f"{type(e).__name__}: {e}")
        raise
    book.finish_run(run_id, status="finished")
    return run_id


def side_of_run(book: Ledger, run_id: str, spec: str) -> Side:
    """The side of a model just evaluated and recorded as ``run_id``."""
    side = side_from_record(book, book.get(run_id))
    return replace(side, source=f"model {spec} (run {run_id[:12]})")


def new_group() -> str:
    return uuid.uuid4().hex[:12]
