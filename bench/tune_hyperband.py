"""Hyperband vs no pruning on the same search space and seeds (MiniLM, SST-2, CPU).

    flock /tmp/frugal-cpu.lock python bench/tune_hyperband.py --json \
        [--trials 12] [--train-rows 1000] [--dev-rows 300] [--evals 9]

Both studies use Optuna's random sampler with the same seed (so they propose the same
trials, in the same order) and the same data and initialisation seed; one prunes with
Hyperband (min resource 1, max resource ``--evals`` checkpoints, ``--reduction-factor``), the
other runs every trial to the end. Checkpoints are evaluated in the loop (``eval_mode=sync``)
so the pruner acts at the same points in both studies, whatever the machine's load. Compute
is the sum of the trials' CPU seconds (and $) from the ledger.
Target: best dev accuracy within 0.5 point with <= 40% of the compute.
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
from train_common import print_table, sst2


def main() -> None:
    from frugalml.train import FinetuneConfig, TuneConfig, tune

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--trials", type=int, default=12)
    ap.add_argument("--train-rows", type=int, default=1000)
    ap.add_argument("--dev-rows", type=int, default=300)
    ap.add_argument("--evals", type=int, default=9)
    ap.add_argument("--reduction-factor", type=int, default=3, help="Hyperband's (default 3)")
    ap.add_argument(
        "--min-resource", type=int, default=1, help="Hyperband's, in checkpoints (default 1)"
    )
    ap.add_argument(
        "--study-name",
        default=None,
        help="Optuna study name; it decides each trial's Hyperband bracket "
        "(default: tune-hyperband-seed<SEED>, so a rerun makes the same decisions)",
    )
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--recipes", default="lora,full")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ledger", default=None, help="default: a temporary SQLite file")
    args = ap.parse_args()
    ledger = args.ledger or f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}"
    train, dev = sst2(args.train_rows, args.dev_rows, seed=args.seed)
    base = FinetuneConfig(
        max_length=args.max_length, evals_per_run=args.evals, eval_mode="sync", seed=args.seed
    )
    cfg = TuneConfig(
        trials=args.trials,
        sampler="random",
        pruner="hyperband",
        seed=args.seed,
        recipes=tuple(args.recipes.split(",")),
        compare_unpruned=True,
        reduction_factor=args.reduction_factor,
        min_resource=args.min_resource,
        study_name=args.study_name or f"tune-hyperband-seed{args.seed}",
        base=base,
    )
    result = tune("minilm", train, dev, cfg, ledger=ledger, progress=True)
    studies = [result.study, result.unpruned]
    rows: list[dict[str, Any]] = []
    for s in studies:
        assert s is not None
        rows.append(
            {
                "pruner": s.pruner,
                "best_dev_accuracy": s.best_accuracy,
                "trials": len(s.trials),
                "pruned": s.pruned,
                "steps": sum(t.steps for t in s.trials),
                "cpu_s": s.compute["cpu_s"],
                "wall_s": s.compute["wall_s"],
                "energy_j": s.compute["energy_j"],
                "cost_usd": s.compute["cost_usd"],
            }
        )
    hb, none = rows
    hb["compute_vs_none"] = hb["cpu_s"] / none["cpu_s"]
    none["compute_vs_none"] = 1.0
    gap = (none["best_dev_accuracy"] or 0.0) - (hb["best_dev_accuracy"] or 0.0)
    print_table(
        rows,
        [
            "pruner",
            "best_dev_accuracy",
            "trials",
            "pruned",
            "steps",
            "cpu_s",
            "compute_vs_none",
            "wall_s",
            "energy_j",
            "cost_usd",
        ],
    )
    trials = [
        {
            "study": s.pruner,
            "number": t.number,
            "state": t.state,
            "accuracy": t.accuracy,
            "steps": t.steps,
            "planned_steps": t.planned_steps,
            "cpu_s": t.compute["cpu_s"],
            "curve": list(t.curve),
            **{k: v for k, v in t.params.items()},
        }
        for s in studies
        if s is not None
        for t in s.trials
    ]
    report = {
        "bench": "tune_hyperband",
        "cpus": os.cpu_count(),
        "train_rows": args.train_rows,
        "dev_rows": args.dev_rows,
        "evals_per_trial": args.evals,
        "reduction_factor": args.reduction_factor,
        "min_resource": args.min_resource,
        "study_name": cfg.study_name,
        "max_length": args.max_length,
        "recipes": args.recipes,
        "seed": args.seed,
        "rows": rows,
        "trials": trials,
        "accuracy_gap_points": gap,
        "compute_fraction": hb["compute_vs_none"],
        "saved_fraction": result.saved_fraction,
        "saved_basis": result.saved_basis,
        "target": "within 0.5 point with <= 40% of the compute",
        "met": gap <= 0.5 and hb["compute_vs_none"] <= 0.40,
    }
    if args.json:
        print(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
