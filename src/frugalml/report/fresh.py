"""Sides evaluated now: models measured in one process, alternating, and recorded.

``evaluate_alternating(["minilm", "out/best"], task, data)`` loads every model first (a
missing one fails before any work), then runs ``rounds`` rounds of one timed pass per model in
the order A B, B A, A B … (a slow moment of a shared machine, or a drift, hits both), and
combines each model's rounds (:func:`combine`), keeping each round's timed figures for the
paired ratio intervals. ``record_eval`` keeps each result in the ledger as an ``eval`` run
with its per-row outputs, its rounds' figures and the usage of evaluating it, so the
statement can be rebuilt from the ledger alone.

Causal language models (``perplexity``, ``generation``, and ``fidelity`` of an LM) go through
the same rounds with ``evaluate_lm``, the measurement ``frugal eval`` makes of an LM: the
first round of each model scores its task and times its decoding, later rounds time it
again (quality does not change between rounds); the figures are per output token. With two
LMs, the fidelity of the second to the first (mean KL, top-1 agreement, flips) is measured
once on ``LM_FIDELITY_WINDOWS`` windows and kept with the second's result.
"""

from __future__ import annotations

import functools
import hashlib
import statistics
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from frugalml.errors import BadInput
from frugalml.records import EnergyPart, Usage
from frugalml.report.sources import save_items, side_from_record
from frugalml.report.statement import Side

if TYPE_CHECKING:
    from frugalml.ledger import Ledger
    from frugalml.search.evaluate import EvalResult

T = TypeVar("T")
# Rounds of each model by default: the fewest whose paired ratios give a 95% interval that
# leaves out the fastest and the slowest round (order statistics 2 and 8 of 9).
DEFAULT_ROUNDS = 9


def data_fingerprint(path: str | Path) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


# Side figure -> its value in one round's result (every round measures these anew)
ROUND_FIGURES: dict[str, Callable[[EvalResult], float]] = {
    "throughput_per_s": lambda r: r.throughput_per_s,
    "latency_ms_p50": lambda r: r.latency_ms_p50,
    "latency_ms_p99": lambda r: r.latency_ms_p99,
    "cost_usd_per_1m": lambda r: r.cost_usd_per_1m,
    "energy_j_per_1k": lambda r: r.energy_j_per_1k,
    "co2_g_per_1k": lambda r: r.co2_g_per_1m / 1000.0,
}


@dataclass(frozen=True)
class Measured:
    """One model evaluated over interleaved rounds.

    ``result``: the rounds combined (:func:`combine`); ``per_round``: each timed figure
    (``Side`` names, :data:`ROUND_FIGURES`) in round order, for the paired ratio intervals;
    ``usage``: what loading and evaluating this model cost (all its rounds, warm-up and
    scoring included), for its ledger run.
    """

    result: EvalResult
    per_round: dict[str, tuple[float, ...]]
    usage: Usage
    fidelity: dict[str, float] | None = None  # LMs: this model's to the first one's


# per-token rate figures of an LM result combined over rounds as the shared ones are
LM_RATE_FIGURES = (
    "prefill_tokens_per_s", "decode_tokens_per_s", "decode_tokens_per_s_batch",
    "time_to_first_token_ms_p50", "time_to_first_token_ms_p99", "inter_token_ms_p50",
    "inter_token_ms_p99", "cost_usd_per_1m_input_tokens", "cost_usd_per_1m_output_tokens",
    "energy_j_per_1k_tokens", "achieved_bandwidth_bytes_per_s", "mbu",
)  # fmt: skip
LM_FIDELITY_WINDOWS = 2


def combine(results: Sequence[EvalResult]) -> EvalResult:
    """One result from several rounds of one model: the median of every rate figure (cost
    and CO2 too, as each round priced them), the peak of memory, sums of counted work."""
    first = results[0]
    sources = {r.energy_source for r in results}
    lm = {
        k: statistics.median(getattr(r, k) for r in results)
        for k in LM_RATE_FIGURES
        if hasattr(first, k)
    }
    return replace(
        first,
        **lm,
        throughput_per_s=statistics.median(r.throughput_per_s for r in results),
        latency_ms_p50=statistics.median(r.latency_ms_p50 for r in results),
        latency_ms_p99=statistics.median(r.latency_ms_p99 for r in results),
        latency_ms_batch1=_median_of_known(r.latency_ms_batch1 for r in results),
        energy_j_per_1k=statistics.median(r.energy_j_per_1k for r in results),
        cost_usd_per_1m=statistics.median(r.cost_usd_per_1m for r in results),
        co2_g_per_1m=statistics.median(r.co2_g_per_1m for r in results),
        peak_memory_bytes=max(r.peak_memory_bytes for r in results),
        texts_timed=sum(r.texts_timed for r in results),
        repeats=sum(r.repeats for r in results),
        timed_s=sum(r.timed_s for r in results),
        cpu_s=sum(r.cpu_s for r in results),
        energy_source=first.energy_source if len(sources) == 1 else "estimate",
    )


def _median_of_known(values: Iterable[float | None]) -> float | None:
    """The median of the figures a round recorded (``None``: none did)."""
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def sum_usage(parts: Sequence[Usage]) -> Usage:
    """The usage of several spans of work at one price: times, energy and money add up,
    memory is the highest peak; a reading mixed with an estimate is an estimate."""
    first = parts[0]
    energy: dict[tuple[str, str], float] = {}
    for u in parts:
        for part in u.energy_parts:
            energy[(part.domain, part.source)] = energy.get((part.domain, part.source), 0.0) + (
                part.energy_j
            )
    sources = {u.energy_source for u in parts}
    return replace(
        first,
        **{k: sum(getattr(u, k) for u in parts) for k in _ADDED},
        peak_host_bytes=max(u.peak_host_bytes for u in parts),
        peak_device_bytes=max(u.peak_device_bytes for u in parts),
        energy_source=first.energy_source if len(sources) == 1 else "estimate",
        energy_parts=tuple(EnergyPart(d, j, s) for (d, s), j in energy.items()),  # type: ignore[arg-type]
    )


_ADDED = (
    "wall_s",
    "cpu_s",
    "device_s",
    "energy_j",
    "instance_cost_usd",
    "energy_cost_usd",
    "cost_usd",
    "co2_g",
)


def evaluate_alternating(
    specs: Sequence[str],
    task: str,
    data: str,
    *,
    rounds: int = DEFAULT_ROUNDS,
    device: str = "cpu",
    threads: int | None = None,
    batch_size: int | None = None,
    instance: str | None = None,
    region: str | None = None,
    seed: int = 0,
    on_step: Callable[[int, int, str], None] | None = None,
    task_options: dict[str, Any] | None = None,
) -> list[Measured]:
    """Evaluate models in one process, alternating, for ``rounds`` rounds (see the module).

    Quality is the same every round (same split, same seed); the per-row outputs kept are the
    first round's. A task that ``needs_reference`` (fidelity) compares with the first model. Each
    model's loading and rounds are metered apart (``Measured.usage``). Causal LMs: see the
    module; ``task_options`` are their task settings (window, stride, windows, new_tokens).
    """
    from frugalml.data import load_data
    from frugalml.measure.hardware import hardware
    from frugalml.measure.prices import resolve
    from frugalml.models import resolve_path
    from frugalml.models.load import wants_lm_data
    from frugalml.passes.persist import load
    from frugalml.search.evaluate import evaluate, reference_outputs
    from frugalml.tasks import get_task

    if rounds < 1:
        raise BadInput("--rounds must be at least 1")
    for spec in specs:  # a missing model fails before anything is loaded
        resolve_path(spec)
    price, hw = resolve(instance, region), hardware()
    lm = [wants_lm_data(spec, task) for spec in specs]
    if any(lm):
        if not all(lm):
            raise BadInput(
                f"{specs[lm.index(False)]} is not a causal language model and "
                f"{specs[lm.index(True)]} is: compare models of one kind"
            )
        return _alternating_lm(
            specs, task, data, rounds=rounds, device=device, threads=threads,
            batch_size=batch_size, price=price, hw=hw, instance=instance, region=region,
            seed=seed, on_step=on_step, task_options=task_options,
        )  # fmt: skip
    if task_options:
        raise BadInput(
            f"{', '.join(task_options)}: settings of causal-LM tasks, and these models are not "
            "causal LMs"
        )
    the_task = get_task(task, seed=seed)
    dataset = load_data(data)
    the_task.check(dataset)
    metered = _Metered(price, hw, len(specs))
    models = [metered(i, functools.partial(load, s, device=device)) for i, s in enumerate(specs)]
    reference = None
    if the_task.needs_reference:
        reference = metered(
            0, lambda: reference_outputs(models[0], the_task, dataset, seed)
        )  # the baseline's outputs: its own work

    def one(i: int, _earlier: list[EvalResult]) -> EvalResult:
        return evaluate(
            models[i], the_task, dataset, device=device, threads=threads,
            batch_size=batch_size, instance=instance, region=region, reference=reference,
            seed=seed, repeats=1,
        )  # fmt: skip

    per = _alternate(specs, rounds, one, metered, on_step)
    return [metered.measured(i, rs) for i, rs in enumerate(per)]


def _alternating_lm(
    specs: Sequence[str],
    task: str,
    data: str,
    *,
    rounds: int,
    device: str,
    threads: int | None,
    batch_size: int | None,
    price: Any,
    hw: Any,
    instance: str | None,
    region: str | None,
    seed: int,
    on_step: Callable[[int, int, str], None] | None,
    task_options: dict[str, Any] | None,
) -> list[Measured]:
    """``evaluate_alternating`` for causal LMs: ``evaluate_lm`` per round (see the module)."""
    from frugalml.passes.persist import load
    from frugalml.search.evaluate import with_runtime
    from frugalml.search.evaluate_lm import as_text, evaluate_lm
    from frugalml.tasks.lm_base import require_lm
    from frugalml.tasks.lm_fidelity import LMFidelity

    text = as_text(Path(data))
    metered = _Metered(price, hw, len(specs))

    def opened(spec: str) -> Any:
        model = load(spec, device=device)
        require_lm(model, task)
        return with_runtime(model, threads=threads, batch_size=batch_size)

    models = [metered(i, functools.partial(opened, s)) for i, s in enumerate(specs)]
    reference = models[0] if task == "fidelity" else None  # fidelity: against the first side

    def one(i: int, earlier: list[Any]) -> Any:
        return evaluate_lm(
            models[i], task, text, instance=instance, region=region,
            reference=reference, seed=seed, repeats=1, task_options=task_options,
            scored=earlier[0] if earlier else None,
        )  # fmt: skip

    per = _alternate(specs, rounds, one, metered, on_step)
    fidelity: list[dict[str, float] | None] = [None] * len(models)
    if len(models) == 2:  # the second's next-token distributions against the first's
        opts = {k: v for k, v in (task_options or {}).items() if k in ("window", "stride")}
        fid = LMFidelity(seed=seed, windows=LM_FIDELITY_WINDOWS, new_tokens=16, **opts)
        figures = metered(1, lambda: fid.score(models[1], text, models[0])[1])
        fidelity[1] = {
            k: float(figures[k])
            for k in ("mean_kl", "top1_agreement", "flips", "windows", "window")
        }
    return [metered.measured(i, rs, fidelity[i]) for i, rs in enumerate(per)]


class _Metered:
    """Each side's usage, span by span (its loading, its rounds), at one price."""

    def __init__(self, price: Any, hw: Any, sides: int) -> None:
        self.price, self.hw = price, hw
        self.spans: list[list[Usage]] = [[] for _ in range(sides)]

    def __call__(self, i: int, work: Callable[[], T]) -> T:
        from frugalml.measure.track import UsageMeter

        meter = UsageMeter(self.price, self.hw)
        meter.start()
        value = work()
        self.spans[i].append(meter.stop())
        return value

    def measured(
        self, i: int, rounds: list[Any], fidelity: dict[str, float] | None = None
    ) -> Measured:
        """Side ``i``'s rounds combined, each round's figures, and all its usage."""
        figures = {k: tuple(f(r) for r in rounds) for k, f in ROUND_FIGURES.items()}
        return Measured(combine(rounds), figures, sum_usage(self.spans[i]), fidelity)


def _alternate(
    specs: Sequence[str],
    rounds: int,
    one: Callable[[int, list[Any]], Any],
    metered: _Metered,
    on_step: Callable[[int, int, str], None] | None,
) -> list[list[Any]]:
    """``rounds`` rounds of ``one(i, side i's earlier results)`` per side, metered, the order
    reversed every other round so neither side always runs first."""
    per: list[list[Any]] = [[] for _ in specs]
    order = list(range(len(specs)))
    step, total = 0, rounds * len(specs)
    for r in range(rounds):
        for i in order if r % 2 == 0 else order[::-1]:
            if on_step:
                on_step(step, total, str(specs[i]))
            per[i].append(metered(i, functools.partial(one, i, per[i])))
            step += 1
    return per


def record_eval(
    book: Ledger, measured: Measured, *, spec: str, data: str, group: str, rounds: int
) -> str:
    """Keep an evaluation in the ledger (kind ``eval``) with its per-row outputs, the figures
    of each round and the usage of the evaluation itself; its id."""
    from frugalml.measure.hardware import environment, hardware

    result = measured.result
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
        "per_round": {k: list(v) for k, v in measured.per_round.items()},
    }
    if measured.fidelity is not None:
        params["fidelity"] = measured.fidelity
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
    book.finish_run(run_id, status="finished", usage=measured.usage)
    return run_id


def side_of_run(book: Ledger, run_id: str, spec: str) -> Side:
    """The side of a model just evaluated and recorded as ``run_id``."""
    side = side_from_record(book, book.get(run_id))
    return replace(side, source=f"model {spec} (run {run_id[:12]})")


def new_group() -> str:
    return uuid.uuid4().hex[:12]
