"""``frugalml.compare``: the cost-delta statement of a candidate against a baseline.

    st = frugalml.compare("minilm", "out/best", task="similarity", data="sts-dev.csv")
    st.quality_drop, st.drop_ci            # in the metric's points
    st.ratios["cost"], st.ratio_cis["cost"] # candidate / baseline, with its 95% interval
    print(st.paragraph()); st.to_dict()     # the words; everything, JSON-ready

Each side is a run id (or a unique prefix), a ``frugal optimize`` output folder, or a model
(a path, an ``.onnx`` file, ``minilm``) evaluated now with ``task`` and ``data``
(:mod:`frugalml.report.sources`). Models evaluated now are measured in one process over
interleaved rounds (:mod:`frugalml.report.fresh`) and recorded in the ledger as ``eval``
runs (``Statement.recorded_run_ids``), so ``compare(RUN_A, RUN_B)`` later rebuilds the same
statement from the ledger alone. ``frugal compare`` and ``frugal gate`` print what this
returns; :func:`frugalml.report.gate.gate` judges it.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from frugalml.errors import BadInput
from frugalml.measure.bootstrap import DEFAULT_RESAMPLES
from frugalml.measure.prices import price_note
from frugalml.report import fresh
from frugalml.report import loadtest as load
from frugalml.report import sources as src
from frugalml.report.statement import Side, Statement, build_statement

if TYPE_CHECKING:
    from frugalml.ledger import Ledger

DEFAULT_ROUNDS = fresh.DEFAULT_ROUNDS
OnStep = Callable[[int, int, str], None]  # (rounds done, rounds in all, model) -> None


@dataclass(frozen=True)
class EvalSettings:
    """How models named as sides are evaluated now (see ``frugal compare --help``)."""

    task: str
    data: str
    rounds: int = DEFAULT_ROUNDS
    device: str = "cpu"
    threads: int | None = None
    batch_size: int | None = None
    instance: str | None = None
    region: str | None = None
    task_options: dict[str, Any] | None = None  # causal LMs: window, stride, windows, new_tokens


def compare(
    baseline: str,
    candidate: str,
    *,
    task: str | None = None,
    data: str | Path | None = None,
    ledger: str | Ledger | None = None,
    rounds: int = DEFAULT_ROUNDS,
    resamples: int = DEFAULT_RESAMPLES,
    device: str = "cpu",
    threads: int | None = None,
    batch_size: int | None = None,
    instance: str | None = None,
    region: str | None = None,
    on_step: OnStep | None = None,
    task_options: dict[str, Any] | None = None,
) -> Statement | load.LoadStatement:
    """The cost-delta statement of ``candidate`` against ``baseline`` (see the module).

    Two ``frugal loadtest`` runs give a :class:`~frugalml.report.loadtest.LoadStatement`
    instead: $ per 1k requests at the SLO, p99 and goodput, with each side's server settings.

    ``task``/``data`` go together: with them, models (and optimize folders' ``best/``) are
    evaluated now over ``rounds`` interleaved rounds on ``device`` (``threads``,
    ``batch_size``: the same for both sides; None keeps each model's own) and priced at
    ``instance``/``region``. ``ledger``: a URL or an open ``Ledger`` (default: the
    configured one). ``resamples``: bootstrap replicates of the quality interval. Raises
    ``BadInput`` on anything a user must fix (unknown run, incomparable sides, bad data).

    Two causal LMs (``perplexity``, ``generation``, or ``fidelity`` of an LM) are measured the
    way ``frugal eval`` measures one (``task_options``: window, stride, windows, new_tokens),
    costs per 1M output tokens, with the candidate's fidelity to the baseline (mean KL, top-1
    agreement, flips) in the notes.
    """
    from frugalml.ledger import Ledger

    specs = [src.classify(baseline), src.classify(candidate)]
    if task is None and all(s.kind == "run" for s in specs):
        with Ledger(ledger) if not isinstance(ledger, Ledger) else nullcontext(ledger) as book:
            if (served := load.compare_runs(book, baseline, candidate)) is not None:
                return served
    settings = _settings(
        specs, task, data, rounds, device, threads, batch_size, instance, region, task_options
    )
    now = [i for i, s in enumerate(specs) if s.kind == "model" or (s.kind == "folder" and task)]
    opened = Ledger(ledger) if not isinstance(ledger, Ledger) else nullcontext(ledger)
    with opened as book:
        sides = _recorded_sides(book, specs, skip=now, task=task)
        recorded: tuple[str, ...] = ()
        notes: list[str] = []
        if now:
            assert settings is not None  # _settings required task and data for a model
            recorded = _evaluate_now(book, specs, now, sides, settings, on_step)
            notes += _fidelity_notes(book, recorded)
    base, cand = sides
    assert base is not None and cand is not None
    if len(now) == 1:
        notes.append(
            "One side was measured now and the other read from the ledger: the cost "
            "ratios include any difference between the two moments (and machines)."
        )
    if note := price_note([base.instance, cand.instance], [base.region, cand.region]):
        notes.append(note)
    ci = src.ci_between(base, cand, resamples=resamples)
    if ci is None and base.items_path and cand.items_path:
        notes.append(
            "The two sides were not scored on the same rows (or their per-row outputs are "
            "gone), so no paired confidence interval."
        )
    return build_statement(
        base,
        cand,
        ci,
        paired=len(now) == 2 or src.same_group(base, cand),
        notes=tuple(notes),
        recorded_run_ids=recorded,
    )


def _settings(
    specs: list[src.Spec], task: str | None, data: str | Path | None, *options: Any
) -> EvalSettings | None:
    """Check the evaluation options against the sides (``BadInput``); None: nothing to run."""
    if (task is None) != (data is None):
        raise BadInput(
            "--task and --data go together", hint="give both, or neither to compare recorded runs"
        )
    if task is None and (m := next((s for s in specs if s.kind == "model"), None)):
        raise BadInput(
            f"'{m.text}' is a model: evaluating it needs --task and --data",
            hint="e.g. --task similarity --data sts-dev.csv, or give a run id",
        )
    if task is None or data is None:
        return None
    if not Path(data).expanduser().is_file():
        raise BadInput(f"cannot read the data file {data}", hint="check the path")
    return EvalSettings(task, str(data), *options)


def _recorded_sides(
    book: Ledger, specs: list[src.Spec], *, skip: list[int], task: str | None
) -> list[Side | None]:
    """The sides read from the ledger or a folder, first: a typo fails before any work."""
    sides: list[Side | None] = [None, None]
    for i, spec in enumerate(specs):
        if i in skip:
            continue
        if spec.kind == "folder":
            assert spec.path is not None
            sides[i] = src.folder_side(book, spec.path)
        else:
            sides[i] = src.side_from_record(book, src.get_run(book, spec.text))
    for side in sides:
        if side is not None and task is not None and side.task != task:
            raise BadInput(
                f"{side.source} was evaluated on task '{side.task}', not '{task}'",
                hint="compare runs and models of the same task",
            )
    return sides


def _fidelity_notes(book: Ledger, run_ids: tuple[str, ...]) -> list[str]:
    """The candidate LM's fidelity to the baseline, as its eval run recorded it."""
    notes = []
    for run_id in run_ids:
        fid = book.get(run_id).params.get("fidelity")
        if isinstance(fid, dict):
            notes.append(
                f"Fidelity of the candidate to the baseline ({int(fid['windows'])} windows of "
                f"{int(fid['window'])} tokens): mean KL {fid['mean_kl']:.4f} nats, top-1 "
                f"agreement {100 * fid['top1_agreement']:.1f}%, greedy continuations changed "
                f"(flips) {100 * fid['flips']:.0f}%."
            )
    return notes


def _evaluate_now(
    book: Ledger,
    specs: list[src.Spec],
    now: list[int],
    sides: list[Side | None],
    settings: EvalSettings,
    on_step: OnStep | None,
) -> tuple[str, ...]:
    """Evaluate the sides ``now`` names (alternating), record them, fill ``sides``; the ids."""
    measured = fresh.evaluate_alternating(
        [specs[i].text for i in now],
        settings.task,
        settings.data,
        rounds=settings.rounds,
        device=settings.device,
        threads=settings.threads,
        batch_size=settings.batch_size,
        instance=settings.instance,
        region=settings.region,
        on_step=on_step,
        task_options=settings.task_options,
    )
    group = fresh.new_group()
    run_ids = []
    for i, result in zip(now, measured, strict=True):
        run_id = fresh.record_eval(
            book, result, spec=specs[i].text, data=settings.data, group=group,
            rounds=settings.rounds,
        )  # fmt: skip
        sides[i] = fresh.side_of_run(book, run_id, specs[i].text)
        run_ids.append(run_id)
    return tuple(run_ids)
