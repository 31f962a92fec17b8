"""Curriculum vs none: steps (and seconds) to reach a fixed dev accuracy (MiniLM, SST-2, CPU).

    flock /tmp/frugal-cpu.lock python bench/curriculum.py --json \
        [--target 80] [--train-rows 2000] [--dev-rows 300] [--eval-every 4] [--seeds 0,1,2]

For each seed and each curriculum (none, length, loss), LoRA fine-tunes MiniLM for up to one
epoch, evaluating a checkpoint every ``--eval-every`` steps in the loop (``eval_mode=sync``,
so the step count at which the target is first met does not depend on the machine's load),
and stops at the first checkpoint reaching ``--target`` points. Reported: steps to target
(median over seeds; runs that never reach it count as not reached), time to target (run
start, including the curriculum's own scoring pass, to the end of that step), the scoring
pass's seconds, the best accuracy and the run's CPU seconds (the run ends at the target, so
this is the compute to reach it, evaluations and scoring included).
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
from train_common import median, print_table, sst2


def main() -> None:
    from frugalml.train import FinetuneConfig, finetune

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--target", type=float, default=80.0)
    ap.add_argument("--train-rows", type=int, default=2000)
    ap.add_argument("--dev-rows", type=int, default=300)
    ap.add_argument("--eval-every", type=int, default=4)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--curricula", default="none,length,loss")
    ap.add_argument("--ledger", default=None, help="default: a temporary SQLite file")
    args = ap.parse_args()
    ledger = args.ledger or f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}"
    curricula = args.curricula.split(",")
    runs: list[dict[str, Any]] = []
    for seed in (int(s) for s in args.seeds.split(",")):
        train, dev = sst2(args.train_rows, args.dev_rows, seed=seed)
        for cur in curricula:  # interleaved: every curriculum sees the same machine state
            cfg = FinetuneConfig(
                recipe="lora",
                learning_rate=args.lr,
                curriculum=cur,
                target_accuracy=args.target,
                eval_every=args.eval_every,
                eval_mode="sync",
                max_length=args.max_length,
                batch_size=args.batch_size,
                seed=seed,
            )
            r = finetune("minilm", train, dev, cfg, ledger=ledger, name=f"bench curriculum {cur}")
            runs.append(
                {
                    "curriculum": cur,
                    "seed": seed,
                    "steps_to_target": r.steps_to_target,
                    "time_to_target_s": r.time_to_target_s,
                    "curriculum_s": r.curriculum_s,
                    "best_accuracy": r.accuracy,
                    "steps": r.steps,
                    "planned_steps": r.planned_steps,
                    "stopped": r.stopped,
                    "curve": [(e.step, e.accuracy) for e in r.evals],
                    "cpu_s": r.usage.cpu_s if r.usage else None,
                }
            )
            sys.stderr.write(json.dumps(runs[-1]) + "\n")
    rows = []
    for cur in curricula:
        mine = [r for r in runs if r["curriculum"] == cur]
        hit = [r for r in mine if r["steps_to_target"] is not None]
        rows.append(
            {
                "curriculum": cur,
                "reached": f"{len(hit)}/{len(mine)}",
                "steps_to_target_median": median([r["steps_to_target"] for r in hit]),
                "steps_to_target": [r["steps_to_target"] for r in mine],
                "time_to_target_s_median": median([r["time_to_target_s"] for r in hit]),
                "scoring_s_median": median([r["curriculum_s"] for r in mine]),
                "best_accuracy_median": median([r["best_accuracy"] for r in mine]),
                "run_cpu_s_median": median([r["cpu_s"] for r in mine if r["cpu_s"] is not None]),
            }
        )
    print_table(
        rows,
        [
            "curriculum",
            "reached",
            "steps_to_target_median",
            "steps_to_target",
            "time_to_target_s_median",
            "scoring_s_median",
            "best_accuracy_median",
            "run_cpu_s_median",
        ],
    )
    report = {
        "bench": "curriculum",
        "cpus": os.cpu_count(),
        "target_points": args.target,
        "train_rows": args.train_rows,
        "dev_rows": args.dev_rows,
        "eval_every": args.eval_every,
        "max_length": args.max_length,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "rows": rows,
        "runs": runs,
    }
    if args.json:
        print(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
