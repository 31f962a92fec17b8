"""How ``frugal eval`` prints a causal LM's figures (``frugalml.lm.evaluate``)."""

from __future__ import annotations

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
