"""Where the figures of a comparison come from: a ledger run, an optimize folder, or a model.

A *side* of ``frugal compare``/``frugal gate`` is named by one string:

- an **optimize output folder** (it holds ``candidates.json``): its chosen candidate, as
  recorded (or, with ``--task/--data``, its ``best/`` model evaluated now);
- a **model** (a path, an ``.onnx`` file, or ``minilm``): evaluated now with ``--task/--data``;
- a **run id** (or a unique prefix) in the ledger: an ``eval`` or ``candidate`` run, with its
  recorded quality and figures; an ``optimize`` run means its chosen candidate.

Models evaluated now are measured in one process, alternating (A B B A A B … over rounds) so
a slow moment of a shared machine hits both, and each is recorded in the ledger as an ``eval``
run with its per-row outputs in ``<data folder>/evals/<run id>.npz`` (numpy arrays, no pickle)
so the statement, confidence interval included, can be rebuilt from the ledger alone.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import statistics
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from frugalml.errors import BadInput, NotFound
from frugalml.records import RunRecord
from frugalml.report.bootstrap import DEFAULT_RESAMPLES, DeltaCI, paired_bootstrap
from frugalml.report.statement import Side, TrainingCost
from frugalml.settings import data_dir

if TYPE_CHECKING:
    from frugalml.ledger import Ledger
    from frugalml.search.evaluate import EvalResult

CANDIDATES_FILE = "candidates.json"
_RUN_ID = re.compile(r"[0-9a-f]{4,32}")  # a run id (uuid4 hex) or a prefix of one
EVAL_KIND = "eval"


@dataclass(frozen=True)
class Spec:
    """What one side names: ``kind`` is ``run``, ``folder`` or ``model``."""

    text: str
    kind: str
    path: Path | None = None


def classify(text: str) -> Spec:
    """Tell an optimize folder, a model and a run id apart (nothing is loaded)."""
    from frugalml.models import ALIASES

    path = Path(text).expanduser()
    if path.is_dir() and (path / CANDIDATES_FILE).exists():
        return Spec(text, "folder", path)
    if text in ALIASES or path.exists() or not _RUN_ID.fullmatch(text.strip().lower()):
        return Spec(text, "model", path)  # a missing path fails as "model not found"
    return Spec(text, "run")


# ---- per-row outputs ------------------------------------------------------------------------
def save_items(items: dict[str, np.ndarray], run_id: str) -> Path:
    """Write per-row outputs to ``<data folder>/evals/<run_id>.npz`` (plain arrays)."""
    folder = data_dir() / "evals"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{run_id}.npz"
    arrays: dict[str, Any] = {k: np.asarray(v) for k, v in items.items()}
    np.savez_compressed(path, allow_pickle=False, **arrays)
    return path


def load_items(path: str | Path) -> dict[str, np.ndarray] | None:
    """Per-row outputs from an ``.npz`` (never unpickled); None when the file is gone."""
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (OSError, ValueError):
        return None


def paired_ci(
    task: str,
    baseline: dict[str, np.ndarray],
    candidate: dict[str, np.ndarray],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> DeltaCI | None:
    """Bootstrap CI of candidate − baseline quality; None when the rows do not pair up."""
    from frugalml.tasks import quality_on

    sizes = {len(v) for v in (*baseline.values(), *candidate.values())}
    if len(sizes) != 1:
        return None
    for key in ("gold", "label", "labels"):  # the same rows must carry the same truth
        if (
            key in baseline
            and key in candidate
            and not np.array_equal(baseline[key], candidate[key])
        ):
            return None

    def on(items: dict[str, np.ndarray]) -> Callable[[np.ndarray], float]:
        return lambda idx: quality_on(task, items, idx)

    return paired_bootstrap(
        on(baseline), on(candidate), sizes.pop(), resamples=resamples, seed=seed
    )


# ---- sides from the ledger ----------------------------------------------------------------------
def _eval_dict(record: RunRecord) -> dict[str, Any]:
    ev = record.params.get("eval")
    if isinstance(ev, dict):
        return ev
    return {k: v for k, v in record.params.items() if not isinstance(v, dict | list)}


def _items_path(record: RunRecord) -> str | None:
    if path := record.artifacts.get("items"):
        return path
    if path := record.artifacts.get("eval"):
        return str(Path(path).with_suffix(".npz"))
    return None


def training_of(
    book: Ledger, record: RunRecord | None, manifest: dict[str, Any] | None = None
) -> TrainingCost | None:
    """What producing the model cost, where the ledger knows: the run named by the model's
    manifest (``train_run_id``, ``candidate_run_id``, ``run_id``), else the candidate run."""
    ids = [
        str(manifest[k])
        for k in ("train_run_id", "candidate_run_id", "run_id")
        if manifest and manifest.get(k)
    ]
    producer: RunRecord | None = None
    for run_id in ids:
        try:
            producer = book.get(run_id)
            break
        except BadInput:
            continue
    if producer is None and record is not None and record.kind in ("candidate", "train"):
        producer = record
    if producer is None or producer.usage is None:
        return None
    u = producer.usage
    return TrainingCost(
        run_id=producer.id,
        kind=producer.kind,
        wall_hours=u.wall_s / 3600,
        device_hours=u.device_s / 3600,
        cost_usd=u.cost_usd,
        energy_j=u.energy_j,
        energy_source=u.energy_source,
    )


def _manifest_of(model: str | None) -> dict[str, Any] | None:
    if not model:
        return None
    path = Path(model)
    for candidate in (path / "frugal.json", path / "best" / "frugal.json"):
        try:
            data: dict[str, Any] = json.loads(candidate.read_text(encoding="utf-8"))
            return data
        except (OSError, ValueError):
            continue
    return None


def side_from_record(book: Ledger, record: RunRecord) -> Side:
    """A side from a recorded eval/candidate run (or an optimize run's chosen candidate)."""
    if record.kind == "optimize":
        record = chosen_child(book, record)
    ev = _eval_dict(record)
    task = ev.get("task") or record.params.get("task")
    metric = ev.get("metric") or record.params.get("metric")
    if not metric and len(record.quality) == 1:
        metric = next(iter(record.quality))
    if not task or not metric:
        raise BadInput(
            f"run {record.id[:12]} ({record.kind} '{record.name}') has no "
            "evaluation recorded (task and metric)",
            hint="pick an eval or candidate run: `frugal runs --kind eval`",
        )
    quality = ev.get("quality")
    if quality is None:
        quality = record.quality.get(metric)
    if record.status != "finished":
        raise BadInput(
            f"run {record.id[:12]} is {record.status}, not finished",
            hint=record.error or "pick a finished run",
        )
    co2 = ev.get("co2_g_per_1k")
    if co2 is None and ev.get("co2_g_per_1m") is not None:
        co2 = float(ev["co2_g_per_1m"]) / 1000.0
    model = record.params.get("model") or ev.get("model")
    return Side(
        name=display_name(record, model),
        source=f"run {record.id[:12]}",
        task=str(task),
        metric=str(metric),
        higher_is_better=bool(
            ev.get("higher_is_better", record.params.get("higher_is_better", True))
        ),
        quality=None if quality is None else float(quality),
        run_id=record.id,
        data=record.params.get("data"),
        n_items=ev.get("rows") or ev.get("n_items"),
        throughput_per_s=ev.get("throughput_per_s"),
        latency_ms_p50=ev.get("latency_ms_p50"),
        latency_ms_p99=ev.get("latency_ms_p99"),
        cost_usd_per_1m=ev.get("cost_usd_per_1m"),
        energy_j_per_1k=ev.get("energy_j_per_1k"),
        energy_source=ev.get("energy_source"),
        co2_g_per_1k=co2,
        peak_memory_bytes=ev.get("peak_memory_bytes"),
        size_bytes=ev.get("size_bytes"),
        device=ev.get("device"),
        threads=ev.get("threads"),
        instance=ev.get("instance"),
        region=ev.get("region"),
        training=training_of(book, record, _manifest_of(model)),
        items_path=_items_path(record),
        group=record.params.get("compare_group"),
    )


def display_name(record: RunRecord, model: str | None) -> str:
    """A short name for a side: the model's folder name (``out/best`` for a search's best)."""
    if record.params.get("name"):
        return str(record.params["name"])
    if record.kind == "eval" and model:
        path = Path(str(model))
        return f"{path.parent.name}/{path.name}" if path.name == "best" else path.name
    return record.name


def chosen_child(book: Ledger, record: RunRecord) -> RunRecord:
    """The candidate an optimize run chose (``params.chosen`` on the child, or the parent's
    ``chosen_run_id``)."""
    chosen_id = record.params.get("chosen_run_id") or record.quality.get("chosen_run_id")
    if chosen_id:
        return book.get(str(chosen_id))
    children = book.runs(parent_id=record.id)
    picked = [c for c in children if c.params.get("chosen")]
    if not picked:
        raise BadInput(
            f"optimize run {record.id[:12]} has no chosen candidate recorded",
            hint="it may have failed or been stopped; `frugal show` it",
        )
    return picked[0]


def get_run(book: Ledger, text: str) -> RunRecord:
    try:
        return book.get(text)
    except NotFound as e:
        if book.count() == 0:
            raise BadInput(
                f"'{text}' is not a file, a model or a run: the ledger {book.url} is empty",
                hint="evaluate models with --task and --data, or run `frugal optimize` first",
            ) from e
        raise BadInput(
            f"'{text}' is not a file, a model alias or a run id in the ledger",
            hint="`frugal runs` lists runs; models are paths or 'minilm'",
        ) from e


def folder_side(book: Ledger, path: Path) -> Side:
    """The chosen candidate recorded in an optimize output folder."""
    entries = read_candidates(path)
    chosen = [e for e in entries if e.get("chosen")]
    if not chosen:
        raise BadInput(
            f"{path / CANDIDATES_FILE} marks no candidate as chosen",
            hint="no candidate met the constraint; compare a run id instead",
        )
    entry = chosen[0]
    if entry.get("run_id"):
        try:
            side = side_from_record(book, book.get(str(entry["run_id"])))
            return replace(side, source=f"{path} (chosen: {side.name})")
        except NotFound:
            pass  # the folder came from another ledger: use what the folder recorded
    return side_from_entry(entry, source=f"{path} (chosen)")


def side_from_entry(entry: dict[str, Any], *, source: str) -> Side:
    ev = entry.get("eval") if isinstance(entry.get("eval"), dict) else entry
    assert isinstance(ev, dict)
    co2 = ev.get("co2_g_per_1k")
    if co2 is None and ev.get("co2_g_per_1m") is not None:
        co2 = float(ev["co2_g_per_1m"]) / 1000.0
    return Side(
        name=str(entry.get("name") or entry.get("id") or "candidate"),
        source=source,
        task=str(ev.get("task") or entry.get("task") or ""),
        metric=str(ev.get("metric") or ""),
        higher_is_better=bool(ev.get("higher_is_better", True)),
        quality=ev.get("quality"),
        run_id=entry.get("run_id"),
        n_items=ev.get("rows"),
        throughput_per_s=ev.get("throughput_per_s"),
        latency_ms_p50=ev.get("latency_ms_p50"),
        latency_ms_p99=ev.get("latency_ms_p99"),
        cost_usd_per_1m=ev.get("cost_usd_per_1m"),
        energy_j_per_1k=ev.get("energy_j_per_1k"),
        energy_source=ev.get("energy_source"),
        co2_g_per_1k=co2,
        peak_memory_bytes=ev.get("peak_memory_bytes"),
        size_bytes=ev.get("size_bytes"),
        device=ev.get("device"),
        threads=ev.get("threads"),
        instance=ev.get("instance"),
        region=ev.get("region"),
    )


def read_candidates(path: Path) -> list[dict[str, Any]]:
    file = path / CANDIDATES_FILE
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise BadInput(
            f"cannot read {file}: {e}", hint="is it a `frugal optimize` output folder?"
        ) from e
    entries = data.get("candidates") if isinstance(data, dict) else data
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise BadInput(
            f"{file} does not list candidates", hint="is it a `frugal optimize` output folder?"
        )
    return entries


# ---- sides evaluated now ----------------------------------------------------------------------
def data_fingerprint(path: str | Path) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def combine(
    results: Sequence[EvalResult], priced_by_hour: bool, usd_per_kwh: float, g_co2_per_kwh: float
) -> EvalResult:
    """One result from several rounds of the same model: medians of the rate figures, the
    peak of memory, sums of counted work; cost recomputed from the median figures."""
    first = results[0]
    tput = statistics.median(r.throughput_per_s for r in results)
    energy = statistics.median(r.energy_j_per_1k for r in results)
    kwh_per_1m = energy * 1000.0 / 3.6e6
    cost = (
        (1e6 / tput / 3600.0 * first.usd_per_hour if tput else math.inf)
        if priced_by_hour
        else kwh_per_1m * usd_per_kwh
    )
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
        energy_source=first.energy_source
        if len({r.energy_source for r in results}) == 1
        else "estimate",
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
    """Evaluate models in one process, alternating A B B A A B … for ``rounds`` rounds.

    Every model is loaded first (a missing one fails before any work); each round measures
    one timed pass per model; the rounds are combined by :func:`combine`. Quality is the
    same every round (same split, same seed), the per-row outputs are the first round's.
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
    if the_task.name == "fidelity":  # agreement with the baseline (the first side)
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
                    models[i],
                    the_task,
                    dataset,
                    device=device,
                    threads=threads,
                    batch_size=batch_size,
                    instance=instance,
                    region=region,
                    reference=reference,
                    seed=seed,
                    repeats=1,
                )
            )
            step += 1
    return [combine(rs, price.priced_by_hour, price.usd_per_kwh, price.g_co2_per_kwh) for rs in per]


def record_eval(
    book: Ledger,
    result: EvalResult,
    *,
    spec: str,
    data: str,
    group: str,
    rounds: int,
    name: str | None = None,
) -> str:
    """Keep an evaluation in the ledger (kind ``eval``) with its per-row outputs; its id."""
    from frugalml.measure.hardware import environment, hardware

    model = (
        spec if not Path(spec).expanduser().exists() else str(Path(spec).expanduser().absolute())
    )
    run_id = book.start_run(
        name or f"eval {Path(spec).name or spec}",
        kind=EVAL_KIND,
        params={
            "model": model,
            "task": result.task,
            "data": str(Path(data).absolute()),
            "data_sha256": data_fingerprint(data),
            "compare_group": group,
            "rounds": rounds,
            "eval": result.to_dict(),
        },
        hardware=hardware(),
        environment=environment(),
    )
    try:
        items = save_items(result.items, run_id)
        book.log_quality(run_id, **{result.metric: result.quality})
        book.log_artifacts(run_id, items=str(items))
    except BaseException as e:
        book.finish_run(run_id, status="failed", error=f"{type(e).__name__}: {e}")
        raise
    book.finish_run(run_id, status="finished")
    return run_id


def side_from_eval(book: Ledger, result: EvalResult, *, spec: str, run_id: str, data: str) -> Side:
    record = book.get(run_id)
    side = side_from_record(book, record)
    return replace(side, source=f"model {spec} (run {run_id[:12]})", data=str(data))


def same_group(a: Side, b: Side) -> bool:
    """Were both sides measured in one ``compare``/``gate`` run (alternating)?"""
    return a.group is not None and a.group == b.group


def new_group() -> str:
    return uuid.uuid4().hex[:12]
