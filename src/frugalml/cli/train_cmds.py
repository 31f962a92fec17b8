"""Training commands: ``finetune`` and ``tune``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from frugalml.cli import format as fmt
from frugalml.cli.app import (
    EncodingOpt,
    FormatOpt,
    InstanceOpt,
    JsonOpt,
    LabelColOpt,
    LedgerOpt,
    OverwriteOpt,
    RayAddressOpt,
    RegionOpt,
    Text2ColOpt,
    TextColOpt,
    app,
    console,
    print_json,
)
from frugalml.errors import BadInput
from frugalml.outputs import OutputGuard

TaskOpt = Annotated[str, typer.Option("--task", help="What to train for: classification.")]
DataOpt = Annotated[
    Path,
    typer.Option(
        "--data",
        help="Training data: 'label text' lines (SST-2, TREC), CSV/TSV with a header, or JSONL.",
        show_default=False,
    ),
]
EvalOpt = Annotated[
    Path,
    typer.Option(
        "--eval", help="Dev data to evaluate checkpoints on (same formats).", show_default=False
    ),
]
RecipeOpt = Annotated[
    str,
    typer.Option(
        "--recipe",
        help="full: train every weight; lora: train low-rank adapters + the head "
        "(peft), merged into the weights when saved.",
    ),
]
PrecisionOpt = Annotated[
    str,
    typer.Option(
        "--precision",
        help="fp32, bf16 (autocast; CPUs with AVX512-BF16/AMX or GPUs) or fp16 (CUDA only).",
    ),
]
LengthOpt = Annotated[
    int, typer.Option("--max-length", help="Tokens per example (truncated).", min=8)
]
EpochsOpt = Annotated[float, typer.Option("--epochs", help="Passes over the training data.")]
BatchOpt = Annotated[int, typer.Option("--batch-size", help="Examples per step.", min=1)]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed for data order and head init.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")]
MinutesOpt = Annotated[
    float | None,
    typer.Option(
        "--max-minutes", help="Wall-clock budget; stops (and keeps the best checkpoint) when spent."
    ),
]


def _load(
    path: Path,
    option: str,
    fmt_name: str,
    text_col: str | None,
    text2_col: str | None,
    label_col: str | None,
    encoding: str | None,
) -> Any:
    from frugalml.cli.data_view import read_data

    return read_data(
        path,
        option,
        format=fmt_name,
        text_col=text_col,
        text2_col=text2_col,
        label_col=label_col,
        encoding=encoding,
    )


def _data_info(train: Any, dev: Any) -> dict[str, Any]:
    from frugalml.cli.data_view import data_info

    return {"train": data_info(train), "eval": data_info(dev)}


def _check_task(task: str) -> None:
    if task != "classification":
        raise BadInput(
            f"unknown task '{task}' for training", hint="fine-tuning supports --task classification"
        )


def parse_target(text: str | None) -> float | None:
    """``accuracy=85`` or ``accuracy=0.85`` → 85.0 (points)."""
    if text is None:
        return None
    metric, _, value = text.partition("=")
    if metric.strip() != "accuracy" or not value:
        raise BadInput(
            f"cannot read target '{text}'",
            hint="write it as accuracy=V, e.g. accuracy=85 (points) or accuracy=0.85",
        )
    try:
        v = float(value)
    except ValueError as e:
        raise BadInput(f"target accuracy '{value}' is not a number") from e
    return v * 100.0 if v <= 1.0 else v


GradCkptOpt = Annotated[
    bool,
    typer.Option(
        "--grad-checkpointing",
        help="Recompute activations in the backward pass: less memory, ~30% more compute.",
    ),
]
CompileOpt = Annotated[
    bool,
    typer.Option("--compile", help="torch.compile the model; its compile time is reported apart."),
]
CurriculumOpt = Annotated[
    str,
    typer.Option(
        "--curriculum",
        help="none: shuffled; length: short examples first, then all; loss: "
        "easy-first by the initial (linear-probe) loss.",
    ),
]
TargetOpt = Annotated[
    str | None,
    typer.Option(
        "--target",
        help="Stop at the first checkpoint reaching it: accuracy=V (points or fraction).",
    ),
]
FinetuneOutOpt = Annotated[
    Path | None,
    typer.Option("--out", help="Folder for the saved model (default frugal-out/finetune-TIME)."),
]
LrOpt = Annotated[
    float | None,
    typer.Option("--lr", help="Peak learning rate (default 5e-5 full, 2e-3 LoRA)."),
]
MaxStepsOpt = Annotated[
    int | None,
    typer.Option("--max-steps", help="Stop after this many steps (overrides --epochs).", min=1),
]
LoraROpt = Annotated[int, typer.Option("--lora-r", help="LoRA rank.", min=1)]
LoraAlphaOpt = Annotated[int, typer.Option("--lora-alpha", help="LoRA alpha (scale).", min=1)]
EvalEveryOpt = Annotated[
    int | None,
    typer.Option(
        "--eval-every", help="Steps between evaluated checkpoints (default: 5 per run).", min=1
    ),
]
EvalModeOpt = Annotated[
    str,
    typer.Option(
        "--eval-mode",
        help="async: a separate process evaluates while training continues; "
        "sync: evaluate in the loop (blocking); none: only the final model.",
    ),
]
MergeOpt = Annotated[
    bool,
    typer.Option(
        "--merge/--no-merge",
        help="Save LoRA merged into the weights (a plain HF model) or as an adapter.",
    ),
]
ModelArg = Annotated[
    str,
    typer.Argument(
        help="'minilm' (bundled all-MiniLM-L6-v2) or a local Hugging Face model folder."
    ),
]


def _recipe(name: str, **options: Any) -> Any:
    """The recipe config for ``--recipe``, with the options that are its settings
    (``--lora-r`` → ``r``...); options another recipe does not have are left out."""
    import dataclasses

    from frugalml.train.registry import recipe_config

    recipe = recipe_config(name)
    own = {f.name for f in dataclasses.fields(recipe)}  # type: ignore[arg-type]
    return dataclasses.replace(  # type: ignore[type-var]
        recipe, **{k: v for k, v in options.items() if k in own}
    )


def finetune_config(**options: Any) -> Any:
    """The ``FinetuneConfig`` for the command-line options (the one place they are mapped):
    ``recipe``, ``lora_r``, ``lora_alpha``, ``merge``, ``target``, ``lr``, ``compile_model``
    and ``FinetuneConfig``'s own field names; checked with ``validate``."""
    from frugalml.train import FinetuneConfig

    o = dict(options)
    recipe = _recipe(
        o.pop("recipe", "lora"),
        r=o.pop("lora_r", 8),
        alpha=o.pop("lora_alpha", 16),
        merge=o.pop("merge", True),
    )
    config = FinetuneConfig(
        recipe=recipe,
        target_accuracy=parse_target(o.pop("target", None)),
        learning_rate=o.pop("lr", None),
        compile=o.pop("compile_model", False),
        **o,
    )
    config.validate()
    return config


@app.command()
def finetune(
    model: ModelArg,
    data: DataOpt,
    eval_data: EvalOpt,
    task: TaskOpt = "classification",
    recipe: RecipeOpt = "lora",
    precision: PrecisionOpt = "fp32",
    grad_checkpointing: GradCkptOpt = False,
    compile_model: CompileOpt = False,
    curriculum: CurriculumOpt = "none",
    target: TargetOpt = None,
    max_minutes: MinutesOpt = None,
    out: FinetuneOutOpt = None,
    lr: LrOpt = None,
    epochs: EpochsOpt = 1.0,
    max_steps: MaxStepsOpt = None,
    batch_size: BatchOpt = 32,
    max_length: LengthOpt = 128,
    lora_r: LoraROpt = 8,
    lora_alpha: LoraAlphaOpt = 16,
    eval_every: EvalEveryOpt = None,
    eval_mode: EvalModeOpt = "async",
    merge: MergeOpt = True,
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    data_format: FormatOpt = "auto",
    text_col: TextColOpt = None,
    text2_col: Text2ColOpt = None,
    label_col: LabelColOpt = None,
    encoding: EncodingOpt = None,
    instance: InstanceOpt = None,
    region: RegionOpt = None,
    ledger: LedgerOpt = None,
    json_out: JsonOpt = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """Fine-tune an encoder with a classification head, measured as one ledger run.

    Trains on --data, evaluates checkpoints on --eval in a separate process while training
    continues, stops early at --target, and saves the best checkpoint as a standard Hugging
    Face folder (LoRA merged) with frugal.json, which `frugal eval` and `frugal optimize`
    accept. Records time-to-target, seconds, peak memory, energy, $ and CO2.

    Example: frugal finetune minilm --data train.tsv --eval dev.tsv --recipe lora
    --target accuracy=85 --max-length 64
    """
    from frugalml.measure.track import install_exit_on_signals
    from frugalml.train import finetune as run_finetune

    install_exit_on_signals()  # SIGTERM/SIGHUP: the run ends failed, naming the signal
    _check_task(task)
    config = finetune_config(
        recipe=recipe,
        lora_r=lora_r,
        lora_alpha=lora_alpha,
        merge=merge,
        target=target,
        lr=lr,
        compile_model=compile_model,
        precision=precision,
        grad_checkpointing=grad_checkpointing,
        curriculum=curriculum,
        max_minutes=max_minutes,
        batch_size=batch_size,
        epochs=epochs,
        max_steps=max_steps,
        max_length=max_length,
        eval_every=eval_every,
        eval_mode=eval_mode,
        device=device,
        seed=seed,
    )
    read = (data_format, text_col, text2_col, label_col, encoding)
    train, dev = _load(data, "--data", *read), _load(eval_data, "--eval", *read)
    out_dir = out or Path("frugal-out") / f"finetune-{time.strftime('%Y%m%d-%H%M%S')}"
    guard = OutputGuard(ledger=ledger, inputs=[model, data, eval_data], overwrite=overwrite)
    guard.claim_dir(out_dir)  # before the model loads: never over the model, data or ledger
    where: dict[str, Any] = {"ledger": ledger, "instance": instance, "region": region}
    result = run_finetune(model, train, dev, config, out=out_dir, progress=not json_out, **where)
    guard.mark_written(out_dir)
    if json_out:
        print_json({**result.to_dict(), "data": _data_info(train, dev)})
        return
    _print_finetune(result)


def _print_finetune(result: Any) -> None:
    rows: list[tuple[str, str]] = [
        ("run", result.run_id),
        ("model saved to", result.model_dir or "-"),
        ("dev accuracy", f"{result.accuracy:.2f} (best checkpoint, step {result.best_step})"),
        ("stopped", f"{result.stopped} after {result.steps} of {result.planned_steps} steps"),
    ]
    if result.target_accuracy is not None:
        reached = (
            f"{fmt.seconds(result.time_to_target_s)} (step {result.steps_to_target})"
            if result.time_to_target_s is not None
            else "not reached"
        )
        rows.append((f"time to {result.target_accuracy:g}", reached))
    rows += [
        (
            "recipe",
            f"{result.recipe}, {result.precision}, {result.trainable_params:,} of "
            f"{result.total_params:,} parameters trained",
        ),
        (
            "throughput",
            f"{result.examples_per_s:.1f} examples/s "
            f"(median step {fmt.seconds(result.step_s_median)})",
        ),
    ]
    if result.compile_s is not None:
        rows.append(("compile (first step)", fmt.seconds(result.compile_s)))
    if result.curriculum_s > 0.01:
        rows.append(("curriculum scoring", fmt.seconds(result.curriculum_s)))
    if result.usage:
        rows += fmt.usage_rows(result.usage)
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for label, value in rows:
        table.add_row(label, value)
    console.print(table)


SamplerOpt = Annotated[str, typer.Option("--sampler", help="tpe or random.")]
PrunerOpt = Annotated[
    str, typer.Option("--pruner", help="hyperband, median or none: stop losing trials early.")
]
ReductionOpt = Annotated[
    int,
    typer.Option(
        "--reduction-factor",
        help="Hyperband: keep about 1 in this many trials at each rung (higher prunes more).",
        min=2,
    ),
]
MinResourceOpt = Annotated[
    int,
    typer.Option(
        "--min-resource",
        help="Hyperband: checkpoints a trial runs before it can first be pruned "
        "(raise it when early checkpoints are still at chance).",
        min=1,
    ),
]
StorageOpt = Annotated[
    str | None,
    typer.Option(
        "--storage",
        help="Optuna storage URL (e.g. sqlite:///optuna.db) to keep or resume the "
        "study; default in memory.",
    ),
]
StudyNameOpt = Annotated[str | None, typer.Option("--study-name", help="Study name in --storage.")]
TuneRecipeOpt = Annotated[
    str | None,
    typer.Option("--recipe", help="Search only this recipe (full or lora); default both."),
]
CompareOpt = Annotated[
    bool,
    typer.Option(
        "--compare-unpruned",
        help="Also run the same study without pruning to measure the "
        "compute saved (else it is estimated).",
    ),
]
TuneEvalModeOpt = Annotated[
    str,
    typer.Option(
        "--eval-mode",
        help="async: checkpoints evaluated by a separate process while the trial trains; "
        "sync: in the loop (blocking).",
    ),
]
EvalsOpt = Annotated[
    int,
    typer.Option("--evals", help="Evaluated checkpoints per trial (the pruner's resource).", min=1),
]
TuneOutOpt = Annotated[
    Path | None,
    typer.Option("--out", help="Keep each completed trial's model under OUT/trial-NNN."),
]


@app.command()
def tune(
    model: ModelArg,
    data: DataOpt,
    eval_data: EvalOpt,
    task: TaskOpt = "classification",
    trials: Annotated[int, typer.Option("--trials", help="Trials to run.", min=1)] = 20,
    sampler: SamplerOpt = "tpe",
    pruner: PrunerOpt = "hyperband",
    reduction_factor: ReductionOpt = 3,
    min_resource: MinResourceOpt = 1,
    storage: StorageOpt = None,
    study_name: StudyNameOpt = None,
    recipe: TuneRecipeOpt = None,
    compare: CompareOpt = False,
    eval_mode: TuneEvalModeOpt = "async",
    evals: EvalsOpt = 9,
    epochs: EpochsOpt = 1.0,
    max_length: LengthOpt = 128,
    seed: SeedOpt = 0,
    max_minutes: MinutesOpt = None,
    out: TuneOutOpt = None,
    device: DeviceOpt = "auto",
    data_format: FormatOpt = "auto",
    text_col: TextColOpt = None,
    text2_col: Text2ColOpt = None,
    label_col: LabelColOpt = None,
    encoding: EncodingOpt = None,
    instance: InstanceOpt = None,
    region: RegionOpt = None,
    ledger: LedgerOpt = None,
    json_out: JsonOpt = False,
    overwrite: OverwriteOpt = False,
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            help="local (trials one after another here) or ray (Ray Tune: OptunaSearch + "
            "ASHA, trials on a Ray cluster; pip install 'frugalml[ray]').",
        ),
    ] = "local",
    address: RayAddressOpt = None,
    max_parallel: Annotated[
        int, typer.Option("--max-parallel", help="Trials run at once (--engine ray).")
    ] = 1,
) -> None:
    """Search fine-tuning hyperparameters with Optuna, pruning losing trials early.

    Space: recipe, learning rate, LoRA rank and alpha, batch size, warm-up. Every trial is a
    ledger run (kind trial) under one tune run, with its measured cost; each checkpoint's dev
    accuracy is reported to the pruner as it arrives. The summary gives the best accuracy,
    the total compute, and the compute pruning saved (measured with --compare-unpruned, else
    estimated from each pruned trial's cost per step).
    """
    from frugalml.measure.track import install_exit_on_signals
    from frugalml.train import TuneConfig
    from frugalml.train import tune as run_tune

    install_exit_on_signals()  # SIGTERM/SIGHUP: the runs end failed, naming the signal
    _check_task(task)
    base = finetune_config(
        epochs=epochs,
        max_length=max_length,
        evals_per_run=evals,
        eval_mode=eval_mode,
        device=device,
        seed=seed,
    )
    config = TuneConfig(
        trials=trials,
        sampler=sampler,
        pruner=pruner,
        storage=storage,
        study_name=study_name,
        seed=seed,
        max_minutes=max_minutes,
        recipes=(recipe,) if recipe else TuneConfig.recipes,
        compare_unpruned=compare,
        reduction_factor=reduction_factor,
        min_resource=min_resource,
        base=base,
    )
    config.validate()
    guard = OutputGuard(ledger=ledger, inputs=[model, data, eval_data], overwrite=overwrite)
    if out is not None:
        guard.claim_dir(out)
    read = (data_format, text_col, text2_col, label_col, encoding)
    train, dev = _load(data, "--data", *read), _load(eval_data, "--eval", *read)
    where: dict[str, Any] = {"ledger": ledger, "instance": instance, "region": region}
    where.update(engine=engine, address=address, max_parallel=max_parallel)
    result = run_tune(model, train, dev, config, out=out, progress=not json_out, **where)
    if out is not None:
        guard.mark_written(out)
    if json_out:
        print_json({**result.to_dict(), "data": _data_info(train, dev)})
        return
    _print_tune(result)


def _print_tune(result: Any) -> None:
    _print_study(result.study)
    if result.unpruned is not None:
        _print_study(result.unpruned)
    s = result.study
    key = "device_s" if s.compute["device_s"] > 0 else "cpu_s"
    what = "device" if key == "device_s" else "CPU"
    console.print(
        f"[bold]best dev accuracy[/] {_acc(s.best_accuracy)} "
        f"(trial run {(s.best_run_id or '-')[:12]}); {len(s.trials)} trials, "
        f"{s.pruned} pruned"
    )
    console.print(
        f"[bold]total compute[/] {fmt.seconds(s.compute[key])} {what}, "
        f"{fmt.seconds(s.compute['wall_s'])} wall, {fmt.usd(s.compute['cost_usd'])}, "
        f"{fmt.joules(s.compute['energy_j'])}"
    )
    console.print(f"[bold]compute saved by pruning[/] {_saving_text(result, key, what)}")


def _saving_text(result: Any, key: str, what: str) -> str:
    if result.saved_fraction is None:
        return "- (no trial was pruned)"
    if result.saved_basis == "measured" and result.unpruned is not None:
        u = result.unpruned
        return (
            f"{result.saved_fraction:.0%} (measured: same study without pruning used "
            f"{fmt.seconds(u.compute[key])} {what}, {fmt.usd(u.compute['cost_usd'])}; "
            f"its best {_acc(u.best_accuracy)})"
        )
    est = result.unpruned_estimate
    return (
        f"{result.saved_fraction:.0%} ({result.saved_basis}: without pruning "
        f"~{fmt.seconds(est[key])} {what}, ~{fmt.usd(est['cost_usd'])}; pass "
        "--compare-unpruned to measure it)"
    )


def _acc(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _print_study(s: Any) -> None:
    table = Table(
        title=f"trials (pruner: {s.pruner}; tune run {s.run_id[:12]})", title_justify="left"
    )
    for col in ("#", "state", "dev acc", "steps", "CPU", "cost", "params"):
        table.add_column(
            col, justify="right" if col in ("#", "dev acc", "steps", "CPU", "cost") else "left"
        )
    for t in s.trials:
        params = ", ".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in t.params.items()
        )
        table.add_row(
            str(t.number),
            t.state,
            _acc(t.accuracy),
            f"{t.steps}/{t.planned_steps}",
            fmt.seconds(t.compute["cpu_s"]),
            fmt.usd(t.compute["cost_usd"]),
            params,
        )
    console.print(table)
