"""How ``frugal eval`` prints a causal LM's figures (``frugalml.search.evaluate_lm``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from frugalml.cli.app import console


def _usd(v: float) -> str:
    return "-" if v != v or v == float("inf") else (f"${v:.4f}" if v < 1 else f"${v:,.2f}")


def print_lm_eval(model: str, r: Any) -> None:
    f = r.task_figures
    if r.task in ("perplexity", "fidelity"):
        how = f"{f.get('windows')} windows of {f.get('window')} tokens, stride {f.get('stride')}"
    else:
        how = f"{f.get('prompts')} prompts, {f.get('new_tokens')} new tokens"
    quality = f"{r.quality:.2f} {r.metric} ({r.task}; {how})"
    if r.task == "fidelity":
        quality += f"; mean KL {f['mean_kl']:.4f}, flips {100 * f['flips']:.0f}%"
    batch = (
        f", {r.decode_tokens_per_s_batch:.1f} at batch {r.batch_size}" if r.batch_size > 1 else ""
    )
    rows = [
        ("model", f"{model} — {r.model}"),
        ("quality", quality),
        ("decode", f"{r.decode_tokens_per_s:.1f} tokens/s (batch 1{batch}, greedy, "
         f"{r.threads} threads, {r.device})"),
        ("prefill", f"{r.prefill_tokens_per_s:.0f} tokens/s ({r.prompt_tokens}-token prompts)"),
        ("time to first token", f"p50 {r.time_to_first_token_ms_p50:.1f} ms, "
         f"p99 {r.time_to_first_token_ms_p99:.1f} ms"),
        ("inter-token", f"p50 {r.inter_token_ms_p50:.1f} ms, p99 {r.inter_token_ms_p99:.1f} ms"),
        ("cost per 1M tokens", f"{_usd(r.cost_usd_per_1m_output_tokens)} output, "
         f"{_usd(r.cost_usd_per_1m_input_tokens)} input ({r.instance})"),
        ("energy per 1k tokens", f"{r.energy_j_per_1k_tokens:.1f} J ({r.energy_source})"),
        ("roofline", f"{r.bytes_per_token / 1e6:.1f} MB read per token; "
         f"{r.achieved_bandwidth_bytes_per_s / 1e9:.2f} of "
         f"{r.memory_bandwidth_bytes_per_s / 1e9:.2f} GB/s measured (MBU {100 * r.mbu:.0f}%)"),
        ("peak memory", f"{r.peak_memory_bytes / 1e6:.0f} MB"),
        ("size on disk", f"{r.size_bytes / 1e6:.1f} MB"),
    ]  # fmt: skip
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)


WindowOpt = Annotated[
    int | None,
    typer.Option(
        "--window",
        min=2,
        help="Causal LMs: tokens per perplexity/fidelity window (default 512, capped by the "
        "model's context).",
    ),
]
StrideOpt = Annotated[
    int | None,
    typer.Option("--stride", min=1, help="Causal LMs: tokens between windows (default: --window)."),
]
WindowsOpt = Annotated[
    int | None, typer.Option("--windows", min=1, help="Causal LMs: most windows scored (8).")
]
NewTokensOpt = Annotated[
    int | None,
    typer.Option("--new-tokens", min=2, help="Causal LMs: greedy tokens per prompt, timed (32)."),
]


def lm_task_options(
    window: int | None, stride: int | None, windows: int | None, new_tokens: int | None
) -> dict[str, int] | None:
    """The LM task settings given on the command line (None when none was)."""
    given = {
        k: v
        for k, v in (
            ("window", window),
            ("stride", stride),
            ("windows", windows),
            ("new_tokens", new_tokens),
        )
        if v is not None
    }
    return given or None


def lm_eval(
    model: str,
    task: str,
    data: Path,
    *,
    ledger: str | None,
    json_out: bool,
    device: str,
    instance: str | None,
    region: str | None,
    threads: int | None,
    batch_size: int | None,
    **kwargs: Any,
) -> None:
    """``frugal eval`` of a causal LM: measured in an ``eval`` run of the ledger, printed."""
    from frugalml.cli.app import err, print_json
    from frugalml.measure.track import track
    from frugalml.search.api import evaluate

    params = {"model": model, "task": task, "data": str(data)}
    with (
        err.status("evaluating…"),
        track(
            f"eval {model}", kind="eval", ledger=ledger, instance=instance, region=region,
            params=params,
        ) as run,
    ):  # fmt: skip
        result: Any = evaluate(
            model, task, data, device=device, threads=threads, batch_size=batch_size,
            instance=instance, region=region, **kwargs,
        )  # fmt: skip
        run.log_quality(**{result.metric: result.quality})
        run.log_params(eval=result.to_dict())
    if json_out:
        print_json({**result.to_dict(), "run_id": run.id})
        return
    print_lm_eval(model, result)


#: ``frugal demo --llm``: what it scores and times (small enough for 2 busy cores)
DEMO_LM = {"window": 128, "windows": 4, "new_tokens": 16}


def demo_llm(
    run_optimize: Any,
    *,
    out: Path,
    budget_minutes: float,
    sentences: int,
    max_quality_drop: float,
    ledger: str | None,
    json_out: bool,
    overwrite: bool,
) -> None:
    """Optimize smollm2 on standard-library docstring prose (on every machine, never text
    we wrote), one sentence a line in OUT/demo-text.txt, task perplexity."""
    from frugalml.cli.app import console, err
    from frugalml.data import stdlib_sentences
    from frugalml.errors import BadInput
    from frugalml.outputs import OutputGuard

    try:
        texts = stdlib_sentences(sentences, seed=0)
    except RuntimeError as e:
        raise BadInput(str(e), hint="install the Python standard library sources") from e
    OutputGuard(ledger=ledger, overwrite=overwrite).claim_dir(out, writes=["demo-text.txt"])
    path = out / "demo-text.txt"
    path.write_text("\n".join(texts) + "\n", encoding="utf-8")
    err.print(
        f"frugal demo --llm: optimizing smollm2 for CPU on {len(texts)} standard-library "
        f"sentences (perplexity, bound +{max_quality_drop:g}%, budget {budget_minutes:g} min)"
    )
    run_optimize(
        "smollm2", "perplexity", path, data_options={}, json_out=json_out,
        max_quality_drop=max_quality_drop, device="cpu", budget_minutes=budget_minutes,
        seed=0, out=out, ledger=ledger, overwrite=overwrite, repeats=1,
        task_options=dict(DEMO_LM),
    )  # fmt: skip
    if not json_out:
        console.print(
            f"try: frugal eval {out / 'best'} --task perplexity --data {path} "
            f"--window {DEMO_LM['window']} --windows {DEMO_LM['windows']}"
        )
