"""Where the figures of a comparison come from: a ledger run, an optimize folder, or a model.

A *side* of ``frugal compare``/``frugal gate`` is named by one string:

- an **optimize output folder** (it holds ``candidates.json``): its chosen candidate, as
  recorded (or, with ``--task/--data``, its ``best/`` model evaluated now);
- a **model** (a path, an ``.onnx`` file, or ``minilm``): evaluated now with ``--task/--data``
  (``report.fresh``);
- a **run id** (or a unique prefix) in the ledger: an ``eval`` or ``candidate`` run, with its
  recorded quality and figures; an ``optimize`` run means its chosen candidate.

Per-row outputs (for the paired bootstrap) are found from the run: ``artifacts.items`` (runs
recorded by compare/gate), else the search's ``OUT/.work/<candidate id>.npz`` for a candidate
of ``frugal optimize``. They are plain numpy arrays, loaded with ``allow_pickle=False``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from frugalml.errors import BadInput, NotFound
from frugalml.measure.bootstrap import DEFAULT_RESAMPLES, DeltaCI, paired_bootstrap
from frugalml.records import RunRecord
from frugalml.report.statement import Side, TrainingCost
from frugalml.settings import data_dir

if TYPE_CHECKING:
    from frugalml.ledger import Ledger

CANDIDATES_FILE = "candidates.json"
_RUN_ID = re.compile(r"[0-9a-f]{4,32}")  # a run id (uuid4 hex) or a prefix of one


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
    try:
        with np.load(Path(path), allow_pickle=False) as npz:
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


def ci_between(a: Side, b: Side, *, resamples: int = DEFAULT_RESAMPLES) -> DeltaCI | None:
    """The paired CI of two sides whose per-row outputs can still be read; else None."""
    if not (a.items_path and b.items_path and a.task == b.task):
        return None
    items_a, items_b = load_items(a.items_path), load_items(b.items_path)
    if items_a is None or items_b is None:
        return None
    return paired_ci(a.task, items_a, items_b, resamples=resamples)


# ---- optimize folders -----------------------------------------------------------------------
def read_candidates(path: Path) -> list[dict[str, Any]]:
    """The entries of ``path/candidates.json`` (a ``frugal optimize`` output folder)."""
    return read_search(path)[0]


# What the search may say about itself next to its candidates (a top-level object):
# stop_reason ("budget", "complete"...), untried (candidates it did not get to),
# max_quality_drop (its bound, points) and quality_tolerance (points counted as a tie).
SEARCH_KEYS = ("stop_reason", "untried", "max_quality_drop", "quality_tolerance")


def read_search(path: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``path/candidates.json``: its entries, and the search's own facts (``SEARCH_KEYS``;
    empty for a file that is a bare list of entries)."""
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
    meta = {k: data[k] for k in SEARCH_KEYS if isinstance(data, dict) and data.get(k) is not None}
    return entries, meta


def entry_items(folder: Path, entry: dict[str, Any]) -> str | None:
    """Where the search left a candidate's per-row outputs (``OUT/.work/<id>.npz``)."""
    if entry.get("items"):
        return str(entry["items"])
    path = folder / ".work" / f"{entry.get('id')}.npz"
    return str(path) if path.exists() else None


def is_baseline(entry: dict[str, Any]) -> bool:
    if "baseline" in entry:
        return bool(entry["baseline"])
    return entry.get("tier") == "baseline" if "tier" in entry else not entry.get("passes")


def _co2_per_1k(ev: dict[str, Any]) -> float | None:
    if ev.get("co2_g_per_1k") is not None:
        return float(ev["co2_g_per_1k"])
    if ev.get("co2_g_per_1m") is not None:
        return float(ev["co2_g_per_1m"]) / 1000.0
    return None


# Side field <- key of a recorded evaluation (a candidates.json entry, an eval run's params).
_FIGURES = {
    "n_items": "rows",
    "throughput_per_s": "throughput_per_s",
    "latency_ms_p50": "latency_ms_p50",
    "latency_ms_p99": "latency_ms_p99",
    "cost_usd_per_1m": "cost_usd_per_1m",
    "energy_j_per_1k": "energy_j_per_1k",
    "energy_source": "energy_source",
    "peak_memory_bytes": "peak_memory_bytes",
    "size_bytes": "size_bytes",
    "device": "device",
    "threads": "threads",
    "instance": "instance",
    "region": "region",
    "batch_size": "batch_size",
}


def figures_of(ev: dict[str, Any]) -> dict[str, Any]:
    """THE mapping from a recorded evaluation to a ``Side``'s serving figures: one place, for
    a search's candidate entry and for a ledger run alike (``co2_g_per_1m`` becomes per 1k).
    (When the search's entries become a typed record, this is the one function to switch.)"""
    return {field: ev.get(key) for field, key in _FIGURES.items()} | {
        "co2_g_per_1k": _co2_per_1k(ev)
    }


def side_from_entry(entry: dict[str, Any], *, source: str, folder: Path | None = None) -> Side:
    """A side from one ``candidates.json`` entry (its evaluation figures, flat or ``eval``)."""
    ev = entry["eval"] if isinstance(entry.get("eval"), dict) else entry
    ok = entry.get("status", "ok") in ("ok", "finished")
    return Side(
        name=str(entry.get("label") or entry.get("name") or entry.get("id") or "candidate"),
        source=source,
        task=str(ev.get("task") or entry.get("task") or ""),
        metric=str(ev.get("metric") or ""),
        higher_is_better=bool(ev.get("higher_is_better", True)),
        quality=ev.get("quality") if ok else None,
        run_id=entry.get("run_id"),
        items_path=entry_items(folder, entry) if folder else None,
        **figures_of(ev),
    )


def folder_side(book: Ledger, path: Path) -> Side:
    """The chosen candidate recorded in an optimize output folder."""
    entries = read_candidates(path)
    chosen = [e for e in entries if e.get("chosen")]
    if not chosen:
        raise BadInput(
            f"{path / CANDIDATES_FILE} marks no candidate as chosen",
            hint="no candidate met the quality bound; compare one of its run ids instead",
        )
    entry = chosen[0]
    side = side_from_entry(entry, source=f"{path} (chosen)", folder=path)
    if entry.get("run_id"):
        try:  # the ledger adds what the folder does not hold (training cost)
            record = book.get(str(entry["run_id"]))
            side = replace(side, training=training_of(book, record, None))
        except NotFound:
            pass  # the folder came from another ledger: what it recorded is enough
    return side


# ---- ledger runs ----------------------------------------------------------------------------
def _candidate_entry(book: Ledger, record: RunRecord) -> tuple[Path, dict[str, Any]] | None:
    """The ``candidates.json`` entry of a candidate run, via its optimize parent."""
    if record.kind != "candidate" or not record.parent_id:
        return None
    try:
        parent = book.get(record.parent_id)
    except NotFound:
        return None
    file = parent.artifacts.get("candidates") or (
        str(Path(parent.params["out"]) / CANDIDATES_FILE) if parent.params.get("out") else None
    )
    if not file or not Path(file).exists():
        return None
    try:
        entries = read_candidates(Path(file).parent)
    except BadInput:
        return None
    for entry in entries:
        if entry.get("run_id") == record.id:
            return Path(file).parent, entry
    return None


def training_of(
    book: Ledger, record: RunRecord | None, manifest: dict[str, Any] | None
) -> TrainingCost | None:
    """What producing the model cost, where the ledger knows it.

    A model an optimize search chose costs its whole lineage: the search (every candidate,
    the final checks) plus the fine-tune of its original, as the search summed it in the
    manifest's ``production_cost`` (the figure its report.md shows) or in the optimize run
    of a candidate run. Otherwise the run named by the manifest (``train_run_id``,
    ``run_id``), else a training run itself."""
    lineage = _production_cost_of(book, record, manifest)
    if lineage is not None:
        return lineage
    producer: RunRecord | None = None
    for key in ("train_run_id", "candidate_run_id", "run_id"):
        if manifest and manifest.get(key):
            try:
                producer = book.get(str(manifest[key]))
                break
            except BadInput:
                continue
    if producer is None and record is not None and record.kind in ("candidate", "train"):
        producer = record
    if producer is not None and producer.kind == "candidate" and not producer.params.get("passes"):
        return None  # the search's baseline: evaluated, not produced
    if producer is None or producer.usage is None:
        return None
    u = producer.usage
    what = "building and evaluating it" if producer.kind == "candidate" else "training it"
    return TrainingCost(
        run_id=producer.id,
        kind=producer.kind,
        wall_hours=u.wall_s / 3600,
        device_hours=u.device_s / 3600,
        cost_usd=u.cost_usd,
        energy_j=u.energy_j,
        energy_source=u.energy_source,
        what=what,
    )


def _production_cost_of(
    book: Ledger, record: RunRecord | None, manifest: dict[str, Any] | None
) -> TrainingCost | None:
    """The optimize search's ``production_cost`` for the model it chose (from its manifest,
    or from the optimize run above a candidate run)."""
    cost, run_id = None, None
    if manifest and isinstance(manifest.get("production_cost"), dict):
        cost, run_id = manifest["production_cost"], manifest.get("optimize_run_id")
    elif record is not None and record.kind == "candidate" and record.parent_id:
        try:
            parent = book.get(record.parent_id)
        except (BadInput, NotFound):
            return None
        best = manifest_of(parent.artifacts.get("best"))
        chosen = best is not None and best.get("candidate_run_id") == record.id
        if chosen and isinstance(parent.params.get("production_cost"), dict):
            # only the chosen candidate was produced by the whole search; another candidate's
            # own run (building and evaluating it) is what it cost
            cost, run_id = parent.params["production_cost"], parent.id
    if cost is None:
        return None
    try:
        runs = list(cost.get("runs") or [])
        what = f"the whole search, {int(cost.get('candidates', 0))} candidates" + (
            ", and the fine-tune of its original" if len(runs) > 1 else ""
        )
        return TrainingCost(
            run_id=str(run_id or (runs[0] if runs else "")),
            kind="optimize",
            wall_hours=float(cost["wall_s"]) / 3600,
            device_hours=0.0,
            cost_usd=float(cost["cost_usd"]),
            energy_j=float(cost["energy_j"]),
            energy_source=str(cost.get("energy_source", "estimate")),
            what=what,
        )
    except (KeyError, TypeError, ValueError):
        return None


def manifest_of(model: Any) -> dict[str, Any] | None:
    if not model:
        return None
    path = Path(str(model))
    for file in (path / "frugal.json", path / "best" / "frugal.json"):
        try:
            data: dict[str, Any] = json.loads(file.read_text(encoding="utf-8"))
            return data
        except (OSError, ValueError):
            continue
    return None


def display_name(record: RunRecord, model: Any) -> str:
    """A short name for a side: the model's folder name (``out/best`` for a search's best)."""
    if record.params.get("name"):
        return str(record.params["name"])
    if record.kind == "eval" and model:
        path = Path(str(model))
        return f"{path.parent.name}/{path.name}" if path.name == "best" else path.name
    if record.kind == "candidate":  # "c03 onnx+int8": the search's label
        return record.name.split(" ", 1)[-1]
    return record.name


def side_from_record(book: Ledger, record: RunRecord) -> Side:
    """A side from a recorded eval/candidate run (or an optimize run's chosen candidate)."""
    if record.kind == "optimize":
        record = chosen_child(book, record)
    if record.status != "finished":
        raise BadInput(
            f"run {record.id[:12]} is {record.status}, not finished",
            hint=record.error or "pick a finished run",
        )
    ev = dict(record.params["eval"]) if isinstance(record.params.get("eval"), dict) else {}
    items = record.artifacts.get("items")
    found = _candidate_entry(book, record)
    if found is not None:  # the search's entry holds the full evaluation (task, rows, co2)
        folder, entry = found
        ev = {**entry, **ev}
        items = items or entry_items(folder, entry)
    parent = book.get(record.parent_id) if record.kind == "candidate" and record.parent_id else None
    task = (
        ev.get("task")
        or record.params.get("task")
        or (parent.params.get("task") if parent else None)
    )
    metric = ev.get("metric") or record.params.get("metric")
    if not metric and len(record.quality) == 1:
        metric = next(iter(record.quality))
    if not task or not metric:
        raise BadInput(
            f"run {record.id[:12]} ({record.kind} '{record.name}') has no evaluation recorded",
            hint="pick an eval or candidate run: `frugal runs --kind eval`",
        )
    quality = ev.get("quality")
    if quality is None:
        quality = record.quality.get(str(metric))
    model = record.params.get("model") or ev.get("model_dir")
    return Side(
        name=display_name(record, model),
        source=f"run {record.id[:12]}",
        task=str(task),
        metric=str(metric),
        higher_is_better=bool(ev.get("higher_is_better", True)),
        quality=None if quality is None else float(quality),
        run_id=record.id,
        data=record.params.get("data") or (parent.params.get("data") if parent else None),
        training=training_of(book, record, manifest_of(record.params.get("model"))),
        items_path=items,
        group=record.params.get("compare_group"),
        data_sha256=record.params.get("data_sha256"),
        **figures_of(ev),
        per_round=record.params.get("per_round") or {},
    )


def chosen_child(book: Ledger, record: RunRecord) -> RunRecord:
    """The candidate run an optimize run chose (from its candidates.json or its best/)."""
    folder = record.artifacts.get("candidates")
    if folder and Path(folder).exists():
        for entry in read_candidates(Path(folder).parent):
            if entry.get("chosen") and entry.get("run_id"):
                return book.get(str(entry["run_id"]))
    best = manifest_of(record.artifacts.get("best"))
    if best and best.get("candidate_run_id"):
        return book.get(str(best["candidate_run_id"]))
    raise BadInput(
        f"optimize run {record.id[:12]} has no chosen candidate recorded",
        hint="no candidate met its bound, or its output folder is gone; compare a candidate "
        "run id (`frugal runs --kind candidate`)",
    )


def get_run(book: Ledger, text: str) -> RunRecord:
    """The run ``text`` names, or a ``BadInput`` saying the ledger is empty or lacks it."""
    from frugalml.ledger.engine import describe_url

    try:
        return book.get(text)
    except NotFound as e:
        if book.count() == 0:
            raise BadInput(
                f"'{text}' is not a file, a model or a run: the ledger "
                f"{describe_url(book.url)} is empty",
                hint="evaluate models with --task and --data, or run `frugal optimize` first",
            ) from e
        raise BadInput(
            f"'{text}' is not a file, a model alias or a run id in the ledger",
            hint="`frugal runs` lists runs; models are paths or 'minilm'",
        ) from e


def same_group(a: Side, b: Side) -> bool:
    """Were both sides measured in one ``compare``/``gate`` run (alternating)?"""
    return a.group is not None and a.group == b.group
