"""Benchmark: how well `frugal place`'s roofline predicts this machine from one measured run.

1. Encode the same STS-B dev sentences with the bundled all-MiniLM-L6-v2 (fp32, CPU, every
   usable core) at batch sizes 1, 8, 32 and 128, interleaved round by round (1, 8, 32, 128,
   then 8, 32, 128, 1, ...) so load from other processes falls on every batch size alike;
   sentences/s is the median over rounds. Warm-up batches untimed.
2. Calibrate the roofline (frugalml.measure.roofline, the code `frugal place` runs) on the
   batch-32 throughput and the batch-1 time of the same run (what an eval records as
   ``throughput_per_s`` and ``latency_ms_batch1``): the straight line through the two times
   gives the overhead per forward (its intercept) and the efficiency (its slope against FLOPs
   per request = 2 x parameters x the tokens each sentence is run with at that batch size,
   padding included: the tokenizer's count of what each batch pads to, not timed), on this
   host's chip as the catalog has it (matched by CPU model or flags; peak fp32 FLOP/s and
   bandwidth for the cores used).
3. Predict batch 8 and 128 from that calibration alone and print the error against the
   measurement (target: within 25%). Beside it, for comparison: the same line with FLOPs from
   the mean unpadded tokens (the model as it stood before 2026-12-01 18:50 UTC, when a quiet run
   showed that batch 128 pads to 23% more tokens than batch 32) and the earlier one-point model
   (batch 32 alone, the catalog's stated 1 ms overhead).
4. Predict SmolLM2-135M's decode rate (batch 1) from the same calibration: memory-bound,
   t = overhead per layer (MiniLM's overhead / its layers) x SmolLM2's layers
   + max(2 x parameters / (peak x efficiency), bytes per token / the copy-probe bandwidth
   measured in this run); then measure it with `frugalml.evaluate` (perplexity task, decode
   timing at batch 1) and print the error.

usage: python bench/place_calibration.py [--rows 400] [--rounds 5] [--json] [--out FILE]
(``--json``: the result as JSON on stdout; ``--out``: also written to FILE.)
Run it under ``flock /tmp/frugal-cpu.lock`` on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("FRUGAL_SHARED_DATA", HERE.parent.parent / "shared" / "data"))
STS = SHARED / "sts-b" / "sts-dev.csv"
WIKI = SHARED / "wikitext-2" / "valid.txt"
BATCHES = (1, 8, 32, 128)
CALIBRATE_ON = 32
HELD_OUT = (8, 128)


def _sentences(rows: int) -> list[str]:
    from frugalml.data import load_data

    data = load_data(STS)
    texts: list[str] = []
    for a, b in zip(data.texts, data.texts2 or [], strict=False):
        texts += [a, b]
    return texts[:rows]


def _rate(model: Any, texts: list[str], batch: int) -> float:
    batches = model.batches(texts, batch)
    start = time.perf_counter()
    for idx in batches:
        model.run_batch([texts[i] for i in idx])
    return len(texts) / (time.perf_counter() - start)


def _padded_tokens(model: Any, texts: list[str], batch: int) -> float:
    """Tokens per text the batches compute, padding included (tokenizer only, untimed)."""
    total = sum(model.tokenize([texts[i] for i in idx])["input_ids"].size
                for idx in model.batches(texts, batch))  # fmt: skip
    return total / len(texts)


def _err(predicted: float, measured: float) -> float:
    return round((predicted - measured) / measured * 100.0, 1)


def _measure_minilm(args: argparse.Namespace) -> tuple[Any, list[str], dict[int, list[float]]]:
    from frugalml.models import load

    model = load("minilm", device="cpu")
    texts = _sentences(args.rows)
    for b in BATCHES:  # warm-up, untimed
        model.run_batch(texts[:b])
    rates: dict[int, list[float]] = {b: [] for b in BATCHES}
    for r in range(args.rounds):
        order = BATCHES[r % len(BATCHES) :] + BATCHES[: r % len(BATCHES)]
        for b in order:
            rates[b].append(_rate(model, texts, b))
    return model, texts, rates


def _measure_decode(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    import frugalml
    from frugalml.models import load

    lm = load("smollm2", device="cpu")
    result = frugalml.evaluate(
        lm,
        "perplexity",
        str(WIKI),
        task_options={"window": 64, "windows": 1, "new_tokens": args.new_tokens},
        repeats=args.decode_repeats,
    )
    return lm, result.to_dict()


def _decode_calibration(cal: Any, enc_layers: int, lm_layers: int, probe: float, peak: Any) -> Any:
    """SmolLM2's decode from MiniLM's calibration: overhead per layer x its layers, the same
    efficiency, memory at this run's probe bandwidth."""
    from frugalml.measure import roofline as rl

    return rl.Calibration(
        efficiency=cal.efficiency,
        overhead_s=cal.overhead_s / enc_layers * lm_layers,
        bw_fraction=probe / peak.bytes_per_s,
        method="line (MiniLM) + probe",
        sources={
            "overhead": f"MiniLM's measured {cal.overhead_s * 1e3:.3g} ms / {enc_layers} layers "
            f"x {lm_layers} layers",
            "efficiency": "MiniLM's measured slope",
            "bandwidth": f"measured: copy probe {probe / 1e9:.4g} GB/s (this run)",
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=400, help="sentences encoded per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--new-tokens", type=int, default=32, help="SmolLM2 tokens per prompt")
    parser.add_argument("--decode-repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()

    from frugalml.measure import roofline as rl
    from frugalml.measure.bandwidth import memory_bandwidth
    from frugalml.measure.hardware import hardware
    from frugalml.measure.prices import catalog, catalog_age
    from frugalml.models import threads_for

    load_before = os.getloadavg()
    model, texts, rates = _measure_minilm(args)
    threads = threads_for(model)
    probe = memory_bandwidth("cpu", threads)  # this run's copy probe (the LM eval reuses it)
    lm, decode = _measure_decode(args)
    load_after = os.getloadavg()

    cat = catalog()
    hw = hardware()
    chip = rl.match_chip(cat, cpu_model=hw.cpu_model, cpu_flags=rl.local_cpu_flags())
    if chip is None:
        raise SystemExit(f"this CPU ({hw.cpu_model}) matches no chip in the catalog")
    ratio = (hw.cpu_physical_cores or hw.cpu_logical_cores / 2) / hw.cpu_logical_cores
    peak = rl.chip_peak(chip, cat["chips"][chip], "fp32", max(1.0, threads * ratio), None)
    measured = {b: statistics.median(v) for b, v in rates.items()}
    size = float(model.size_bytes())
    mean_tokens = float(model.tokenize(texts)["attention_mask"].sum(axis=1).mean())
    padded = {b: _padded_tokens(model, texts, b) for b in BATCHES}
    stated_overhead = float(cat["defaults"]["place_overhead_ms_cpu"]) / 1e3

    def work(b: int, tokens: float = mean_tokens) -> rl.Workload:
        return rl.Workload(2.0 * size / 4.0 * tokens, size, b, "fp32")

    # the calibration: batch 32's throughput and batch 1's time, as `frugal place` reads them
    cal = rl.calibrate(
        work(CALIBRATE_ON),
        peak,
        CALIBRATE_ON / measured[CALIBRATE_ON],
        overhead_s=stated_overhead,
        single_s=1.0 / measured[1],
    )
    old = rl.calibrate(
        work(CALIBRATE_ON), peak, CALIBRATE_ON / measured[CALIBRATE_ON], overhead_s=stated_overhead
    )
    cal_padded = rl.calibrate(
        work(CALIBRATE_ON, padded[CALIBRATE_ON]),
        peak,
        CALIBRATE_ON / measured[CALIBRATE_ON],
        overhead_s=stated_overhead,
        single_s=1.0 / measured[1],
    )
    rows = []
    for b in BATCHES:
        pred = b / rl.batch_time_s(work(b), peak, cal)
        pred_pad = b / rl.batch_time_s(work(b, padded[b]), peak, cal_padded)
        pred_old = b / rl.batch_time_s(work(b), peak, old)
        rows.append(
            {
                "batch_size": b,
                "role": "calibration" if b in (1, CALIBRATE_ON) else "held out",
                "measured_per_s": round(measured[b], 2),
                "predicted_per_s": round(pred, 2),
                "error_pct": _err(pred, measured[b]),
                "padded_tokens_per_text": round(padded[b], 2),
                "predicted_padded_per_s": round(pred_pad, 2),
                "error_padded_pct": _err(pred_pad, measured[b]),
                "predicted_one_point_per_s": round(pred_old, 2),
                "error_one_point_pct": _err(pred_old, measured[b]),
                "bound": work(b).bound(peak, cal),
            }
        )

    # SmolLM2 decode (batch 1) from the same calibration: overhead per layer x its layers,
    # memory term at this run's probe bandwidth
    enc_layers = int(model.module.config.num_hidden_layers)
    lm_layers = int(lm.module.config.num_hidden_layers)
    weights = float(decode["weights_bytes"])
    lm_work = rl.Workload(2.0 * weights / 4.0, float(decode["bytes_per_token"]), 1, "fp32")
    lm_cal = _decode_calibration(cal_padded, enc_layers, lm_layers, probe, peak)
    decode_unpadded_err = _err(
        1.0
        / rl.batch_time_s(
            lm_work, peak, _decode_calibration(cal, enc_layers, lm_layers, probe, peak)
        ),
        float(decode["decode_tokens_per_s"]),
    )
    lm_pred = 1.0 / rl.batch_time_s(lm_work, peak, lm_cal)
    lm_meas = float(decode["decode_tokens_per_s"])
    decode_row = {
        "model": decode["model"],
        "layers": lm_layers,
        "weights_bytes": int(weights),
        "bytes_per_token": decode["bytes_per_token"],
        "bound": lm_work.bound(peak, lm_cal),
        "overhead_ms": round(lm_cal.overhead_s * 1e3, 3),
        "memory_ms": round(lm_work.memory_s(peak) / lm_cal.bw_fraction * 1e3, 3),
        "compute_ms": round(lm_work.compute_s(peak) / lm_cal.efficiency * 1e3, 3),
        "measured_tokens_per_s": round(lm_meas, 2),
        "predicted_tokens_per_s": round(lm_pred, 2),
        "error_pct": _err(lm_pred, lm_meas),
        "mbu": round(float(decode["mbu"]), 3),
        "new_tokens": args.new_tokens,
        "repeats": args.decode_repeats,
        "sources": lm_cal.sources,
    }
    held = [r for r in rows if r["role"] == "held out"]
    errors = [abs(r["error_padded_pct"]) for r in held] + [abs(decode_row["error_pct"])]
    result = {
        "benchmark": "place_calibration",
        "model": "all-MiniLM-L6-v2 (bundled), fp32, torch, cpu",
        "sentences": len(texts),
        "mean_tokens_per_sentence": round(mean_tokens, 2),
        "layers": enc_layers,
        "rounds": args.rounds,
        "threads": threads,
        "cpu_model": hw.cpu_model,
        "chip": peak.describe(),
        "calibrated_on": {"throughput_batch": CALIBRATE_ON, "single_batch": 1},
        "headline": "padded",  # max_abs_error_pct / within_25_pct: the padded line + decode
        "calibration": {
            "method": cal_padded.method,
            "efficiency": round(cal_padded.efficiency, 4),
            "overhead_ms": round(cal_padded.overhead_s * 1e3, 3),
            "sources": cal_padded.sources,
            "note": cal_padded.note,
        },
        "calibration_unpadded": {
            "efficiency": round(cal.efficiency, 4),
            "overhead_ms": round(cal.overhead_s * 1e3, 3),
        },
        "max_abs_error_unpadded_pct": max(
            [abs(r["error_pct"]) for r in held] + [abs(decode_unpadded_err)]
        ),
        "one_point": {"efficiency": round(old.efficiency, 4), "overhead_ms": old.overhead_s * 1e3},
        "probe_bandwidth_gb_s": round(probe / 1e9, 2),
        "rows": rows,
        "decode": decode_row,
        "max_abs_error_pct": max(errors),
        "within_25_pct": max(errors) <= 25.0,
        "max_abs_error_one_point_pct": max(abs(r["error_one_point_pct"]) for r in held),
        "rounds_per_s": {str(b): [round(x, 2) for x in v] for b, v in rates.items()},
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "usable_cpus": hw.cpu_logical_cores,
        "catalog": catalog_age([cat["chips"][chip]]),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    text = json.dumps(result, indent=2) + "\n"
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    if args.json:
        sys.stdout.write(text)
    else:
        for r in rows:
            print(f"batch {r['batch_size']:>3} ({r['role']}): measured {r['measured_per_s']}/s, "
                  f"predicted {r['predicted_per_s']}/s ({r['error_pct']:+}%)")  # fmt: skip
        print(f"SmolLM2 decode: measured {lm_meas:.1f} tok/s, predicted {lm_pred:.1f} "
              f"({decode_row['error_pct']:+}%)")  # fmt: skip


if __name__ == "__main__":
    main()
