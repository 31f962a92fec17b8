"""``frugal optimize`` for a causal LM: precision candidates, Pareto front, cheapest in bound.

Candidates (``LM_SPACE``, filtered by ``--passes`` and by what the device supports): bf16,
the decode step compiled over a static KV cache (``torch_compile``), torchao weight-only
int8 (per row; and with the output projection quantized too) and int4 with groups of 32, 64
and 128 inputs, int4 (packed two a byte) and int8 on PyTorch's CPU kernels, decode compiled,
ONNX Runtime GenAI's int4, llama.cpp (``llama_cpp_gguf``, when llama-cpp-python is
installed) on the model's own GGUF file (a Llama-architecture folder model: its weights
exported to an F16 GGUF) and quantized by llama.cpp to Q4_0, Q8_0, Q4_K_M and Q5_K_M (a GGUF
file requantized, a folder model's export quantized; not tried on other architectures),
then batch sizes of the best one (``runtime_settings``).
Each is measured by ``lm.evaluate`` in this process against the same text, and its fidelity
to the original (mean KL, top-1 agreement, flips on ``FIDELITY_WINDOWS`` windows) is stated
next to it whatever the task. Cost is $ per 1M *output* tokens (``cost_usd_per_1m``).

The bound: ``--max-quality-drop`` is points for ``fidelity``/``generation``; for
``perplexity`` (lower is better) a relative increase in percent: a candidate is in bound
when its perplexity is at most the original's x (1 + drop / 100). The chosen model is the
cheapest in bound that is cheaper than the original; it is saved to OUT/best with
``candidates.json`` and ``report.md`` next to it (and what ``reporter`` writes:
``frugalml.optimize`` and ``frugal optimize`` add ``report.html``). The optimize run in the
ledger names these files, so ``frugal report`` finds them from the run.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from frugalml.errors import BadInput, CandidateFailed
from frugalml.passes import (
    HalfPrecision,
    LlamaCppGGUF,
    OrtGenAIBuild,
    RuntimeSettings,
    TorchCompile,
    WeightOnlyQuant,
    apply,
    describe,
)
from frugalml.passes.gguf_export import llama_problem
from frugalml.passes.llama_cpp import is_gguf_model
from frugalml.passes.pipeline import problem
from frugalml.passes.registry import PassContext
from frugalml.search.pareto import pareto_front

LM_SPACE: list[tuple[Any, ...]] = [
    (WeightOnlyQuant(bits=8),),
    # PyTorch's CPU weight-only kernels on bf16 activations, the decode step compiled: 4 bits
    # two a byte (torchao's tinygemm layout; Q4_1's grid at groups of 32), and int8 per row
    (WeightOnlyQuant(bits=4, group_size=32, cpu_kernels=True), TorchCompile()),
    (WeightOnlyQuant(bits=8, cpu_kernels=True), TorchCompile()),
    (LlamaCppGGUF(),),  # the GGUF's own weights on llama.cpp (a folder model: exported, F16)
    # the same weights quantized by llama.cpp's quantizer (GGUF or Llama-architecture models)
    (LlamaCppGGUF(weights="q4_0"),),  # repacked at load for x86's fastest 4-bit kernels
    (LlamaCppGGUF(weights="q8_0"),),  # llama.cpp's int8
    (LlamaCppGGUF(weights="q4_k_m"),),
    (LlamaCppGGUF(weights="q5_k_m"),),
    (WeightOnlyQuant(bits=4, group_size=32),),
    (WeightOnlyQuant(bits=4, group_size=64),),
    (WeightOnlyQuant(bits=4, group_size=128),),
    (WeightOnlyQuant(bits=8, keep_lm_head=False),),
    (HalfPrecision("bfloat16"),),
    (TorchCompile(),),  # the decode step over a static KV cache, compiled
    (OrtGenAIBuild(precision="int4", block_size=32),),  # the builder's int4, one call
    (OrtGenAIBuild(precision="int4", block_size=128),),
]
BATCH_SIZES = (4, 8)
FIDELITY_WINDOWS = 2


def _requantizes(config: Any) -> bool:
    """A llama.cpp quantization (tried on GGUF and Llama-architecture models only; the
    ``source`` variant is tried on any, to say why another architecture does not run there)."""
    return isinstance(config, LlamaCppGGUF) and config.weights != "source"


def relative_drop(quality: float, baseline: float, higher_is_better: bool) -> float:
    """The bound's unit: percent increase of perplexity, else points lost."""
    if higher_is_better:
        return baseline - quality
    return 100.0 * (quality / baseline - 1.0)


def optimize_lm(
    model: Any,
    task: str,
    data: Any,
    *,
    max_quality_drop: float = 1.0,
    device: str = "cpu",
    threads: int | None = None,
    instance: str | None = None,
    region: str | None = None,
    seed: int = 0,
    out: str | Path = "frugal-out",
    repeats: int = 3,
    budget_minutes: float = 30.0,
    passes: list[str] | None = None,
    ledger: Any = None,
    listener: Callable[[str, dict[str, Any]], None] | None = None,
    metric: str | None = None,
    task_options: dict[str, Any] | None = None,
    timing: dict[str, Any] | None = None,
    overwrite: bool = False,
    reporter: Callable[[Any], list[Path]] | None = None,
    **_ignored: Any,
) -> Any:
    from frugalml.measure.prices import resolve
    from frugalml.measure.track import track
    from frugalml.outputs import OutputGuard
    from frugalml.passes.persist import load
    from frugalml.search.evaluate import with_runtime
    from frugalml.search.evaluate_lm import as_text, evaluate_lm
    from frugalml.search.space import Candidate
    from frugalml.tasks.lm_fidelity import LMFidelity

    started = time.monotonic()
    emit = listener or (lambda _e, _i: None)
    resolve(instance, region)
    text = as_text(data)
    base = load(model, device=device)
    if base.output != "lm":
        from frugalml.tasks.lm_base import require_lm

        require_lm(base, task)
    base = with_runtime(base, threads=threads)
    guard = OutputGuard(ledger=ledger, inputs=[model, data], overwrite=overwrite)
    out_dir = guard.claim_dir(out, writes=["best", "candidates.json", "report.md", "report.html"])
    deadline = started + budget_minutes * 60.0
    opts = dict(timing or {})
    fid_task = LMFidelity(seed=seed, windows=FIDELITY_WINDOWS, new_tokens=16)

    def measure(cand: Candidate, variant: Any) -> dict[str, Any]:
        r = evaluate_lm(
            variant, task, text, metric=metric, instance=instance, region=region,
            reference=base, seed=seed, repeats=repeats, task_options=task_options, **opts,
        )  # fmt: skip
        rec = r.to_dict()
        _items, fid = fid_task.score(variant, text, base)
        rec.update(
            id=cand.id, label=cand.label, tier=cand.tier, status="ok",
            pipeline=[{"name": describe(c), "config": c.__dict__} for c in cand.pipeline],
            mean_kl=fid["mean_kl"], top1_agreement=fid["top1_agreement"], flips=fid["flips"],
        )  # fmt: skip
        return rec

    params = {"model": str(model), "task": task, "max_quality_drop": max_quality_drop}
    # builds (ONNX Runtime GenAI folders) go to a scratch folder, removed when the search ends
    with (
        tempfile.TemporaryDirectory(prefix="frugal-lm-") as scratch,
        track(
            f"optimize {model}", kind="optimize", ledger=ledger, instance=instance,
            region=region, params=params,
        ) as run,
    ):  # fmt: skip
        ctx = PassContext(work_dir=Path(scratch), seed=seed, device=device)
        gguf = is_gguf_model(base) or llama_problem(base) is None
        queue = [Candidate("c00", (), "baseline")]
        queue += [
            Candidate(f"c{i + 1:02d}", p, "convert")
            for i, p in enumerate(LM_SPACE)
            if (passes is None or all(describe(c).split("(")[0] in passes for c in p))
            and problem(p, engine=base.engine, device=device) is None
            and (gguf or not any(_requantizes(c) for c in p))
        ]
        records, variants, untried = _run_queue(
            queue, base, ctx, measure, deadline=deadline, emit=emit,
            max_quality_drop=max_quality_drop,
            phase_two=passes is None or "runtime_settings" in passes,
        )  # fmt: skip
        result = _finish(
            records, variants, run, guard, out_dir, reporter, task=task, model=str(model),
            source=text.source, max_quality_drop=max_quality_drop,
            budget_s=budget_minutes * 60.0, started=started, untried=untried,
        )  # fmt: skip
    return result


def _run_queue(
    queue: list[Any],
    base: Any,
    ctx: PassContext,
    measure: Callable[[Any, Any], dict[str, Any]],
    *,
    deadline: float,
    emit: Callable[[str, dict[str, Any]], None],
    max_quality_drop: float,
    phase_two: bool,
) -> tuple[list[dict[str, Any]], dict[str, Any], int]:
    """Measure the candidates in order (the baseline first), then batch sizes of the best in
    bound (``phase_two``); (records, built variants by id, candidates left untried)."""
    from frugalml.search.space import Candidate

    records: list[dict[str, Any]] = []
    variants: dict[str, Any] = {}
    n = len(queue)
    baseline: dict[str, Any] | None = None
    while queue:
        cand = queue.pop(0)
        if cand.tier != "baseline" and time.monotonic() > deadline:
            untried = 1 + len(queue)
            emit("budget", {"untried": untried, "skipped": untried})
            return records, variants, untried
        emit("start", {"candidate": cand, "queued": len(queue)})
        try:
            variant = apply(base, list(cand.pipeline), ctx) if cand.pipeline else base
            rec = measure(cand, variant)
            variants[cand.id] = variant
        except Exception as e:  # bad input, a failed pass, out of memory: this candidate only
            if cand.tier == "baseline":
                raise
            known = isinstance(e, CandidateFailed | BadInput)
            error = str(e) if known else f"{type(e).__name__}: {e}"[:300]
            rec = {"id": cand.id, "label": cand.label, "tier": cand.tier,
                   "status": "failed", "error": error}  # fmt: skip
        baseline = rec if cand.tier == "baseline" else baseline
        assert baseline is not None
        _rate(rec, baseline)
        records.append(rec)
        emit("done", {"record": rec})
        if not queue and phase_two:
            phase_two = False
            best = _pick(records, baseline, max_quality_drop, include_base=True)
            if best is not None:
                keep = [
                    c for c in _pipeline_of(best, LM_SPACE) if not isinstance(c, RuntimeSettings)
                ]
                for bs in BATCH_SIZES:
                    pipe = (*keep, RuntimeSettings(batch_size=bs))
                    queue.append(Candidate(f"c{n:02d}", pipe, "runtime"))
                    n += 1
    return records, variants, 0


def _finish(
    records: list[dict[str, Any]],
    variants: dict[str, Any],
    run: Any,
    guard: Any,
    out_dir: Path,
    reporter: Callable[[Any], list[Path]] | None,
    *,
    task: str,
    model: str,
    source: str,
    max_quality_drop: float,
    budget_s: float,
    started: float,
    untried: int,
) -> Any:
    """Choose, save OUT/best, write candidates.json and the reports, name them on the run."""
    from frugalml.passes.persist import save
    from frugalml.search.result import OptimizeResult

    baseline = records[0]
    best = _pick(records, baseline, max_quality_drop, include_base=False)
    front = pareto_front(records)
    for r in records:
        r["on_pareto"] = any(r is f for f in front)
        r["chosen"] = best is not None and r is best
    guard.remove(out_dir / "best")  # only what frugal wrote there
    if best is not None:
        save(variants[best["id"]], out_dir / "best", optimize_run_id=run.id,
             candidate_id=best["id"], quality=best["quality"])  # fmt: skip
    run.log_quality(**{baseline["metric"]: baseline["quality"]})
    (out_dir / "candidates.json").write_text(
        json.dumps(records, indent=2, default=str) + "\n", encoding="utf-8"
    )
    as_records: Any = records  # plain dicts with the CandidateRecord keys LM candidates have
    result = OptimizeResult(
        baseline=as_records[0], best=cast(Any, best), pareto=cast(Any, front),
        candidates=as_records, out=out_dir, run_id=run.id, task=task,
        metric=str(baseline["metric"]), max_quality_drop=max_quality_drop, budget_s=budget_s,
        elapsed_s=time.monotonic() - started, model=model, data=source,
        untried=untried, stop_reason="budget" if untried else "completed",
    )  # fmt: skip
    # the caller's reports (report.html ...), then report.md in per-token terms over theirs
    paths = [Path(p) for p in (reporter(result) if reporter else [])]
    (out_dir / "report.md").write_text(
        report_md(records, baseline, best, task, max_quality_drop), encoding="utf-8"
    )
    paths = [p for p in paths if p.name != "report.md"] + [out_dir / "report.md"]
    run.log_artifacts(
        candidates=str(out_dir / "candidates.json"),
        **{p.name.replace(".", "_"): str(p) for p in paths},
        **({"best": str(out_dir / "best")} if best is not None else {}),
    )
    return result


def _pipeline_of(record: dict[str, Any], space: list[tuple[Any, ...]]) -> tuple[Any, ...]:
    labels = {" + ".join(describe(c) for c in p): p for p in space}
    return labels.get(record["label"], ())


def _rate(rec: dict[str, Any], baseline: dict[str, Any]) -> None:
    if rec.get("status") != "ok":
        return
    hib = bool(rec["higher_is_better"])
    rec["final_quality"] = rec["quality"]  # one text: no separate final split
    rec["quality_drop"] = relative_drop(float(rec["quality"]), float(baseline["quality"]), hib)
    base_tps = float(baseline["throughput_per_s"]) or math.nan
    rec["throughput_ratio"] = float(rec["throughput_per_s"]) / base_tps
    base_cost = float(baseline["cost_usd_per_1m"]) or math.nan
    rec["cost_ratio"] = float(rec["cost_usd_per_1m"]) / base_cost


def _pick(
    records: list[dict[str, Any]], baseline: dict[str, Any], max_drop: float, include_base: bool
) -> dict[str, Any] | None:
    ok = [
        r
        for r in records
        if r.get("status") == "ok"
        and r["quality_drop"] <= max_drop + 1e-9
        and (include_base or r is not baseline)
        and (include_base or float(r["cost_usd_per_1m"]) < float(baseline["cost_usd_per_1m"]))
    ]
    return min(ok, key=lambda r: float(r["cost_usd_per_1m"])) if ok else None


def report_md(
    records: list[dict[str, Any]],
    baseline: dict[str, Any],
    best: dict[str, Any] | None,
    task: str,
    max_drop: float,
) -> str:
    unit = "% perplexity increase" if task == "perplexity" else " points"
    lines = [
        f"# frugal optimize: causal LM, task {task}",
        "",
        f"Bound: at most {max_drop:g}{unit} against the original. Cost: $ per 1M output "
        "tokens (decode at the candidate's batch size). Fidelity to the original on "
        f"{FIDELITY_WINDOWS} windows: mean KL (nats), top-1 agreement, flips (greedy "
        "continuations that change).",
        "",
        "| id | candidate | status | quality | drop | $/1M out | decode tok/s | MBU | KL | top-1 "
        "| flips | |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        if r.get("status") != "ok":
            lines.append(f"| {r['id']} | {r['label']} | failed | | | | | | | | | {r['error']} |")
            continue
        mark = "chosen" if r.get("chosen") else ("pareto" if r.get("on_pareto") else "")
        lines.append(
            f"| {r['id']} | {r['label']} | ok | {r['quality']:.3f} | {r['quality_drop']:+.2f} "
            f"| ${r['cost_usd_per_1m']:.4f} | {r['throughput_per_s']:.1f} | {100 * r['mbu']:.0f}% "
            f"| {r['mean_kl']:.4f} | {100 * r['top1_agreement']:.1f}% | {100 * r['flips']:.0f}% "
            f"| {mark} |"
        )
    lines.append("")
    if best is None:
        lines.append("No candidate is cheaper than the original within the bound.")
    else:
        lines.append(f"Chosen: {best['label']} ({best['throughput_ratio']:.2f}x decode tokens/s).")
    return "\n".join(lines) + "\n"
