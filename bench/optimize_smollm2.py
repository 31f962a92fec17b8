"""Benchmark: frugal optimize on SmolLM2-135M vs fp32 transformers, torchao, ORT GenAI, llama.cpp.

1. ``frugal optimize smollm2 --task perplexity`` on WikiText-2 valid (the library call, 2
   threads, a 2% perplexity bound, windows of 256 x 4 to keep the search short), unless
   ``--from DIR`` reuses an earlier output folder. Its ``best/`` is "frugal chosen".
2. In one process, 2 threads, batch 1, greedy: the rows
   - ``fp32 transformers``: the GGUF dequantized to float32, ``model.generate`` (the baseline);
   - ``torchao int8``: weight-only int8 (``WeightOnlyQuant(bits=8)``, eager mode);
   - ``torchao int4 packed, compiled``: 4-bit weights two a byte in torchao's CPU layout on
     bf16 activations (``WeightOnlyQuant(bits=4, group_size=32, cpu_kernels=True)``), the decode
     step compiled over a static cache (``TorchCompile()``): frugal's own 4-bit row;
   - ``torchao int8 bf16, compiled``: int8 per row on bf16 activations, compiled the same way
     (``WeightOnlyQuant(bits=8, cpu_kernels=True)``): frugal's own int8 row;
   - ``frugal chosen``: what step 1 saved;
   - ``ort genai int4 (builder default)``: the ONNX Runtime GenAI builder's int4, one call;
   - ``llama.cpp Q4_1 gguf``: the bundled GGUF on llama-cpp-python (when it is importable);
   - ``llama.cpp Q8_0`` (the int8 row the targets judge), ``Q4_0``, ``Q4_K_M``, ``Q5_K_M``:
     that GGUF requantized by llama.cpp's quantizer (``LlamaCppGGUF(weights=...)``).
3. Quality, on 8 windows of 512 tokens of the text (non-overlapping): perplexity, and
   against fp32 on the same windows mean KL(fp32 || row), top-1 agreement and flips (greedy
   continuations of 32 tokens from each window's first 64 tokens that differ anywhere).
4. Timing after one warm-up per row, interleaved (A, B, C, then B, C, A ...), ``--repeats``
   rounds of ``--new-tokens`` greedy tokens from a 64-token prompt, median: decode tokens/s
   (steps after the first token / their seconds; for the baseline, (generate(N) - generate(1))
   seconds), its ratio to the baseline, MBU (bytes read per token x tokens/s / the copy
   probe's bandwidth) and $ per 1M output tokens (the instance price of one second / tokens/s).

usage: python bench/optimize_smollm2.py [--json] [--from DIR] [--repeats 5]
       python bench/optimize_smollm2.py --markdown RESULT.json  (docs/benchmarks.md's table)
Run it under ``flock /tmp/frugal-cpu.lock`` on a shared machine. Without
../shared/data/wikitext-2/valid.txt it prints why and exits 0.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED, THREADS, cpu  # sets the offline variables first

WINDOW, WINDOWS = 512, 8
FLIP_PROMPT, FLIP_TOKENS = 64, 32
BASE = "fp32 transformers"
INT8 = "torchao int8"
INT4 = "torchao int4 packed, compiled"
INT8C = "torchao int8 bf16, compiled"
CHOSEN = "frugal chosen"
ORT = "ort genai int4 (builder default)"
LLAMA = "llama.cpp Q4_1 gguf"
#: the bundled GGUF requantized by llama.cpp (frugal's pass): row name -> llama.cpp type
REQUANT = {
    "llama.cpp Q8_0 (requantized)": "q8_0",
    "llama.cpp Q4_0 (requantized)": "q4_0",
    "llama.cpp Q4_K_M (requantized)": "q4_k_m",
    "llama.cpp Q5_K_M (requantized)": "q5_k_m",
}
Q8 = "llama.cpp Q8_0 (requantized)"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_optimize(data: Path, out: Path, budget: float, drop: float) -> dict[str, Any]:
    import frugalml

    def listener(event: str, info: dict[str, Any]) -> None:
        if event == "done":
            r = info["record"]
            if r["status"] == "ok":
                log(f"  {r['id']} {r['label']}: ppl {r['quality']:.2f}, "
                    f"{r['throughput_per_s']:.1f} tok/s, KL {r['mean_kl']:.4f}")  # fmt: skip
            else:
                log(f"  {r['id']} {r['label']}: failed: {r['error']}")

    t = time.perf_counter()
    res = frugalml.optimize(
        "smollm2", "perplexity", data, threads=THREADS, out=out, budget_minutes=budget,
        max_quality_drop=drop, ledger=f"sqlite:///{out / 'ledger.db'}", listener=listener,
        task_options={"window": 256, "windows": 4}, overwrite=True,
    )  # fmt: skip
    return {
        "elapsed_s": time.perf_counter() - t,
        "candidates": [
            {
                k: c.get(k)
                for k in (
                    "id",
                    "label",
                    "status",
                    "quality",
                    "quality_drop",
                    "throughput_per_s",
                    "mean_kl",
                    "flips",
                    "error",
                    "chosen",
                )
            }
            for c in res.candidates
        ],
        "best": res.best["label"] if res.best else None,
        "max_quality_drop": drop,
    }


def quality(model: Any, windows: list[Any], base_lp: list[Any] | None) -> dict[str, Any]:
    """Perplexity on the windows; against ``base_lp`` (fp32's log-probs) KL and top-1."""
    import numpy as np
    import torch

    nll, count, kls, agree, lps = 0.0, 0, [], [], []
    for i, ids in enumerate(windows):
        logits = model.engine_runtime.logits(model, ids[None, :])[0]
        lp = torch.log_softmax(logits.float(), dim=-1)[:-1]
        target = torch.as_tensor(ids[1:])
        nll += float(-lp.gather(1, target[:, None]).double().sum())
        count += len(target)
        if base_lp is None:
            lps.append(lp)
        else:
            ref = base_lp[i]
            kls.append(float((ref.exp() * (ref - lp)).sum(-1).clamp_min(0).mean()))
            agree.append(float((lp.argmax(-1) == ref.argmax(-1)).double().mean()))
    out: dict[str, Any] = {"perplexity": float(np.exp(nll / count)), "tokens_scored": count}
    if base_lp is None:
        out.update(mean_kl=0.0, top1_agreement=1.0, log_probs=lps)
    else:
        out.update(mean_kl=float(np.mean(kls)), top1_agreement=float(np.mean(agree)))
    return out


def continuations(model: Any, windows: list[Any]) -> list[list[int]]:
    rt = model.engine_runtime
    return [rt.greedy(model, w[None, :FLIP_PROMPT], FLIP_TOKENS)[0][0].tolist() for w in windows]


def decode_timer(name: str, model: Any, prompt: Any, new_tokens: int) -> Any:
    """A function timing one greedy decode: its decode seconds for ``new_tokens - 1`` steps."""
    import torch

    if name == BASE:  # the user's baseline: transformers generate, prefill subtracted
        ids = torch.as_tensor(prompt[None, :])

        def gen(n: int) -> float:
            t = time.perf_counter()
            with torch.inference_mode():
                model.module.generate(
                    ids, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                    pad_token_id=model.tokenizer.pad_token_id,
                )  # fmt: skip
            return time.perf_counter() - t

        return lambda: max(1e-9, gen(new_tokens) - gen(1))
    rt = model.engine_runtime
    return lambda: sum(rt.greedy(model, prompt[None, :], new_tokens)[2])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--data", type=Path, default=SHARED / "wikitext-2" / "valid.txt")
    ap.add_argument("--out", type=Path, default=Path("frugal-out/bench-smollm2"))
    ap.add_argument("--from", dest="from_dir", type=Path, help="reuse an optimize output")
    ap.add_argument("--budget-minutes", type=float, default=6.0)
    ap.add_argument("--max-quality-drop", type=float, default=2.0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--instance", default=None, help="price catalog instance (default: auto)")
    ap.add_argument("--markdown", type=Path, help="print the docs table of a result file")
    args = ap.parse_args()
    if args.markdown is not None:
        print(markdown(json.loads(args.markdown.read_text(encoding="utf-8"))))
        return 0
    if not args.data.is_file():
        log(f"skipped: {args.data} is absent (WikiText-2 raw validation)")
        print(json.dumps({"skipped": f"{args.data} is absent"}))
        return 0

    import os

    import numpy as np
    import torch

    import frugalml
    from frugalml.data.lm_text import read_text, token_windows
    from frugalml.measure.bandwidth import memory_bandwidth
    from frugalml.measure.prices import resolve
    from frugalml.models import Runtime
    from frugalml.models.runtimes.llama_cpp import available as llama_available
    from frugalml.passes import (
        LlamaCppGGUF,
        OrtGenAIBuild,
        PassContext,
        TorchCompile,
        WeightOnlyQuant,
        apply,
    )
    from frugalml.search.evaluate_lm import kv_bytes_per_position

    torch.set_num_threads(THREADS)
    out = (args.from_dir or args.out).absolute()
    info: dict[str, Any] = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "loadavg_before": list(os.getloadavg()),
    }
    if args.from_dir is None:
        log(f"frugal optimize smollm2 on {args.data} (budget {args.budget_minutes} min) ...")
        info["optimize"] = run_optimize(args.data, out, args.budget_minutes, args.max_quality_drop)

    def two_threads(m: Any) -> Any:
        return m.evolve(runtime=Runtime(**{**m.runtime.to_dict(), "threads": THREADS}))

    base = two_threads(frugalml.load("smollm2"))
    ctx = PassContext(work_dir=out / "bench-work")
    models: dict[str, Any] = {BASE: base}
    failed: dict[str, str] = {}
    builds: list[tuple[str, Any]] = [
        (INT8, WeightOnlyQuant(bits=8)),
        (INT4, [WeightOnlyQuant(bits=4, group_size=32, cpu_kernels=True), TorchCompile()]),
        (INT8C, [WeightOnlyQuant(bits=8, cpu_kernels=True), TorchCompile()]),
    ]
    if (out / "best").exists():
        models[CHOSEN] = two_threads(frugalml.load(out / "best"))
    else:
        failed[CHOSEN] = "optimize chose no model"
    builds.append((ORT, OrtGenAIBuild(precision="int4")))
    if llama_available():
        builds.append((LLAMA, LlamaCppGGUF()))
        builds += [(name, LlamaCppGGUF(weights=w)) for name, w in REQUANT.items()]
    else:
        for name in (LLAMA, *REQUANT):
            failed[name] = "llama-cpp-python is not importable"
    for name, cfg in builds:
        log(f"building {name} ...")
        try:
            models[name] = two_threads(apply(base, cfg, ctx))
        except Exception as e:  # a peer that cannot be built is stated, not a crash
            failed[name] = f"{type(e).__name__}: {e}"[:300]

    text = read_text(args.data)
    windows, _scored = token_windows(
        base.tokenizer, text, window=WINDOW, stride=WINDOW, max_windows=WINDOWS
    )
    rows: dict[str, dict[str, Any]] = {}
    log("quality: fp32 ...")
    q = quality(base, windows, None)
    base_lp = q.pop("log_probs")
    base_cont = continuations(base, windows)
    rows[BASE] = {**q, "flips": 0.0}
    for name, m in models.items():
        if name == BASE:
            continue
        log(f"quality: {name} ...")
        q = quality(m, windows, base_lp)
        cont = continuations(m, windows)
        flips = float(np.mean([a != b for a, b in zip(cont, base_cont, strict=True)]))
        rows[name] = {**q, "flips": flips}
    del base_lp

    prompt = windows[-1][:64]
    timers = {n: decode_timer(n, m, prompt, args.new_tokens) for n, m in models.items()}
    log(f"timing: {args.repeats} interleaved rounds of {args.new_tokens} tokens ...")
    for name, m in models.items():  # warm-up, untimed
        m.engine_runtime.greedy(m, prompt[None, :], 8)
        timers[name]()
    names = list(models)
    seconds: dict[str, list[float]] = {n: [] for n in names}
    for r in range(args.repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            seconds[name].append(timers[name]())
    bandwidth = memory_bandwidth("cpu", THREADS)
    price = resolve(args.instance)
    usd_per_s = price.usd_per_hour / 3600.0
    steps = args.new_tokens - 1
    base_rate = steps / statistics.median(seconds[BASE])
    for name, m in models.items():
        rate = steps / statistics.median(seconds[name])
        weights = m.engine_runtime.weights_bytes(m)
        kv = kv_bytes_per_position(m) * (len(prompt) + args.new_tokens / 2)
        rows[name].update(
            engine=m.engine, dtype=m.dtype, decode_tokens_per_s=rate,
            ratio=rate / base_rate,
            ratio_paired=statistics.median(
                b / t for b, t in zip(seconds[BASE], seconds[name], strict=True)
            ),
            bytes_per_token=weights + kv, weights_bytes=weights,
            mbu=(weights + kv) * rate / bandwidth, usd_per_1m_output_tokens=1e6 / rate * usd_per_s,
            seconds=seconds[name],
        )  # fmt: skip
    base_ppl = rows[BASE]["perplexity"]
    for row in rows.values():
        row["perplexity_change_pct"] = 100.0 * (row["perplexity"] / base_ppl - 1.0)
    info.update(
        threads=THREADS, repeats=args.repeats, new_tokens=args.new_tokens, window=WINDOW,
        windows=len(windows), data=str(args.data), cpu=cpu(),
        memory_bandwidth_bytes_per_s=bandwidth, instance=price.instance,
        usd_per_hour=price.usd_per_hour, rows=rows, failed=failed,
        checks=_checks(rows), int8_row=int8_row(rows), loadavg_after=list(os.getloadavg()),
    )  # fmt: skip
    print(json.dumps(info, indent=2) if args.json else table(rows))
    return 0


def _checks(rows: dict[str, dict[str, Any]]) -> dict[str, bool]:
    """The issue's targets, as the figures above meet them or not."""
    checks: dict[str, bool] = {}
    c = rows.get(CHOSEN)
    if c:
        checks["chosen_ratio_ge_5"] = c["ratio"] >= 5.0
        checks["chosen_ppl_le_2pct"] = c["perplexity_change_pct"] <= 2.0
        checks["chosen_kl_le_0_05"] = c["mean_kl"] <= 0.05
        checks["chosen_mbu_ge_0_6"] = c["mbu"] >= 0.6
        peers = [rows[p] for p in (ORT, LLAMA) if p in rows]
        in_bound = [p for p in peers if p["perplexity_change_pct"] <= 2.0]
        if in_bound:
            best = min(p["usd_per_1m_output_tokens"] for p in in_bound)
            # a peer's own model (the same weights: same engine, types and perplexity) timed
            # twice cannot beat itself; a lower figure for it is the run's noise
            same = [p for p in in_bound if _same_model(p, c)]
            checks["chosen_cheaper_than_best_peer_in_bound"] = (
                c["usd_per_1m_output_tokens"] < best and not same
            )
    name = int8_row(rows)
    if name:
        checks.update(_int8_checks(rows[name]))
    return checks


def int8_row(rows: dict[str, dict[str, Any]]) -> str | None:
    """The int8 row the int8 targets judge: of the int8 rows frugal can choose (its compiled
    bf16 int8, llama.cpp's Q8_0, torchao's eager int8), the first meeting all three targets,
    else llama.cpp's Q8_0 (else the eager one)."""
    present = [n for n in (INT8C, Q8, INT8) if n in rows]
    met = [n for n in present if all(_int8_checks(rows[n]).values())]
    fallback = [n for n in present if n != INT8C] or present
    return (met or fallback or [None])[0]


def _int8_checks(row: dict[str, Any]) -> dict[str, bool]:
    return {
        "int8_ratio_ge_1_5": row["ratio"] >= 1.5,
        "int8_ppl_le_0_5pct": row["perplexity_change_pct"] <= 0.5,
        "int8_kl_le_0_01": row["mean_kl"] <= 0.01,
    }


def _same_model(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return bool(
        a["engine"] == b["engine"]
        and a["dtype"] == b["dtype"]
        and a["perplexity"] == b["perplexity"]
    )


def table(rows: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| model | decode tok/s | vs fp32 | perplexity | change | mean KL | flips | MBU "
        "| $/1M out |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {r['decode_tokens_per_s']:.1f} | {r['ratio']:.2f}x | "
            f"{r['perplexity']:.2f} | {r['perplexity_change_pct']:+.1f}% | {r['mean_kl']:.4f} | "
            f"{100 * r['flips']:.0f}% | {100 * r['mbu']:.0f}% | "
            f"${r['usd_per_1m_output_tokens']:.4f} |"
        )
    return "\n".join(lines)


#: the docs table's rows: its label -> the result file's row
DOC_ROWS = {
    "transformers fp32 `generate`": BASE,
    "torchao int8 weight-only (eager)": INT8,
    "torchao int4 packed (Q4_1's grid, bf16), decode compiled": INT4,
    "torchao int8 (bf16), decode compiled": INT8C,
    "**frugal, chosen within 2%**": CHOSEN,
    "ONNX Runtime GenAI int4, builder default": ORT,
    "llama.cpp, the bundled Q4_1 GGUF": LLAMA,
    "llama.cpp Q8_0, requantized by frugal (int8)": Q8,
    "llama.cpp Q4_0, requantized by frugal": "llama.cpp Q4_0 (requantized)",
    "llama.cpp Q4_K_M, requantized by frugal": "llama.cpp Q4_K_M (requantized)",
    "llama.cpp Q5_K_M, requantized by frugal": "llama.cpp Q5_K_M (requantized)",
}


def markdown(info: dict[str, Any]) -> str:
    """docs/benchmarks.md's LLM table from a result file (tests/test_bench_docs_llm.py)."""
    lines = [
        "| model | engine | decode tok/s | vs fp32 | perplexity | change | mean KL | flips "
        "| MBU | $/1M output tokens |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, key in DOC_ROWS.items():
        r = info["rows"].get(key)
        if r is None:
            why = info.get("failed", {}).get(key, "not run")
            lines.append(f"| {label} | — | — | — | — | — | — | — | — | {why} |")
            continue
        lines.append(
            f"| {label} | {r['engine']} {r['dtype']} | {r['decode_tokens_per_s']:.1f} "
            f"| {r['ratio']:.2f}x | {r['perplexity']:.2f} | {r['perplexity_change_pct']:+.1f}% "
            f"| {r['mean_kl']:.4f} | {100 * r['flips']:.0f}% | {100 * r['mbu']:.0f}% "
            f"| ${r['usd_per_1m_output_tokens']:.3f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
