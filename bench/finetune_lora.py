"""Full fine-tune vs LoRA on MiniLM (SST-2, CPU): dev accuracy, peak memory, time; and the
training loop's step throughput with asynchronous evaluation vs none vs synchronous.

    flock /tmp/frugal-cpu.lock python bench/finetune_lora.py --json \
        [--train-rows 2000] [--max-length 64] [--batch-size 32] [--repeats 1]

Part 1 (recipes): each recipe fine-tunes MiniLM for one epoch on the same seeded subset of
SST-2 train (same data order, same head init), evaluated once at the end on the whole SST-2
dev set (872 rows). Each run is a fresh process, so peak memory (VmHWM of the run, reset at
its start) is the run's own; it is split into the memory held after loading and building the
model (for LoRA this includes importing peft, ~135 MB) and what training added on top at its
peak (activations, gradients, optimizer state). Recipes are interleaved over ``--repeats``,
repeat r using seed ``--seed`` + r (subset, data order, head init); figures are medians.
Target: LoRA within 1 point of full.

Part 2 (async eval): LoRA, ``--steps`` steps, a checkpoint every ``--eval-every`` steps,
evaluated asynchronously (separate process), synchronously (in the loop), or not at all.
Throughput = examples / seconds of the training loop. Target: async within 5% of none.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_common import median, print_table, run_variant, sst2, usage_figures


def one(spec: dict[str, Any]) -> dict[str, Any]:
    """One measured fine-tune (runs in its own process)."""
    from frugalml.train import FinetuneConfig, finetune

    train, dev = sst2(spec["train_rows"], spec.get("dev_rows"), seed=spec["seed"])
    cfg = FinetuneConfig(**spec["config"])
    r = finetune("minilm", train, dev, cfg, ledger=spec["ledger"], name=f"bench {spec['variant']}")
    return {
        "variant": spec["variant"],
        "accuracy": r.accuracy,
        "loop_s": r.loop_s,
        "examples_per_s": r.examples_per_s,
        "step_s_median": r.step_s_median,
        "steps": r.steps,
        "trainable_params": r.trainable_params,
        "total_params": r.total_params,
        "evals": len(r.evals),
        "eval_s_median": median([e.eval_s for e in r.evals]),
        "setup_memory_mib": r.setup_memory_bytes / 2**20,
        "train_memory_mib": r.train_memory_bytes / 2**20,
        **usage_figures(r),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--train-rows", type=int, default=2000)
    ap.add_argument("--dev-rows", type=int, default=None, help="default: all 872")
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--full-lr", type=float, default=1e-4)
    ap.add_argument("--lora-lr", type=float, default=2e-3)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=40, help="async-eval part: steps per run")
    ap.add_argument("--eval-every", type=int, default=5, help="async-eval part")
    ap.add_argument("--async-dev-rows", type=int, default=300, help="async-eval part")
    ap.add_argument("--skip", choices=["recipes", "async"], default=None)
    ap.add_argument("--ledger", default=None, help="default: a temporary SQLite file")
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(json.loads(args.one))))
        return
    ledger = args.ledger or f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}"
    common = {"max_length": args.max_length, "batch_size": args.batch_size, "seed": args.seed}
    report: dict[str, Any] = {
        "bench": "finetune_lora",
        "cpus": os.cpu_count(),
        "train_rows": args.train_rows,
        "dev_rows": args.dev_rows or 872,
        **common,
        "epochs": args.epochs,
        "repeats": args.repeats,
    }
    script = str(Path(__file__).resolve())
    if args.skip != "recipes":
        variants = {
            "full": {"recipe": "full", "learning_rate": args.full_lr},
            "lora": {"recipe": "lora", "learning_rate": args.lora_lr},
        }
        runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
        for r in range(args.repeats):
            seed = args.seed + r  # each repeat a new seed: subset, data order and head init
            for name, change in variants.items():
                spec = {
                    "variant": name,
                    "train_rows": args.train_rows,
                    "dev_rows": args.dev_rows,
                    "seed": seed,
                    "ledger": ledger,
                    "config": {
                        **common,
                        **change,
                        "seed": seed,
                        "epochs": args.epochs,
                        "eval_mode": "none",
                    },
                }
                runs[name].append(run_variant(script, spec))
        rows = []
        for name, rs in runs.items():
            rows.append(
                {
                    "recipe": name,
                    "lr": variants[name]["learning_rate"],
                    "dev_accuracy": median([r["accuracy"] for r in rs]),
                    "dev_accuracy_per_seed": [round(r["accuracy"], 2) for r in rs],
                    "peak_host_mib": median([r["peak_host_mib"] for r in rs]),
                    "setup_memory_mib": median([r["setup_memory_mib"] for r in rs]),
                    "train_memory_mib": median([r["train_memory_mib"] for r in rs]),
                    "loop_s": median([r["loop_s"] for r in rs]),
                    "wall_s": median([r["wall_s"] for r in rs]),
                    "cpu_s": median([r["cpu_s"] for r in rs]),
                    "examples_per_s": median([r["examples_per_s"] for r in rs]),
                    "trainable_params": rs[0]["trainable_params"],
                    "energy_j": median([r["energy_j"] for r in rs]),
                    "energy_source": rs[0]["energy_source"],
                    "cost_usd": median([r["cost_usd"] for r in rs]),
                }
            )
        gap = rows[0]["dev_accuracy"] - rows[1]["dev_accuracy"]
        report["recipes"] = {
            "rows": rows,
            "runs": runs,
            "full_minus_lora_points": gap,
            "target": "LoRA within 1 point of full",
            "met": gap <= 1.0,
        }
        print_table(
            rows,
            [
                "recipe",
                "lr",
                "dev_accuracy",
                "peak_host_mib",
                "setup_memory_mib",
                "train_memory_mib",
                "loop_s",
                "wall_s",
                "examples_per_s",
                "trainable_params",
                "energy_j",
                "cost_usd",
            ],
        )
    if args.skip != "async":
        modes = ["none", "async", "sync"]
        aruns: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
        for _ in range(args.repeats):
            for mode in modes:
                spec = {
                    "variant": f"eval-{mode}",
                    "train_rows": args.train_rows,
                    "dev_rows": args.async_dev_rows,
                    "seed": args.seed,
                    "ledger": ledger,
                    "config": {
                        **common,
                        "recipe": "lora",
                        "max_steps": args.steps,
                        "eval_every": args.eval_every,
                        "eval_mode": mode,
                    },
                }
                aruns[mode].append(run_variant(script, spec))
        arows = [
            {
                "eval_mode": m,
                "examples_per_s": median([r["examples_per_s"] for r in aruns[m]]),
                "step_s_median": median([r["step_s_median"] for r in aruns[m]]),
                "loop_s": median([r["loop_s"] for r in aruns[m]]),
                "evals": aruns[m][0]["evals"],
                "eval_s_median": median([r["eval_s_median"] for r in aruns[m]]),
                "cpu_s": median([r["cpu_s"] for r in aruns[m]]),
            }
            for m in modes
        ]
        base = arows[0]["examples_per_s"]
        for row in arows:
            row["throughput_vs_none"] = row["examples_per_s"] / base if base else float("nan")
        report["async_eval"] = {
            "rows": arows,
            "runs": aruns,
            "steps": args.steps,
            "eval_every": args.eval_every,
            "dev_rows": args.async_dev_rows,
            "target": "async within 5% of no eval",
            "met": arows[1]["throughput_vs_none"] >= 0.95,
        }
        print_table(
            arows,
            [
                "eval_mode",
                "examples_per_s",
                "throughput_vs_none",
                "step_s_median",
                "loop_s",
                "evals",
                "eval_s_median",
                "cpu_s",
            ],
        )
    if args.json:
        print(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
