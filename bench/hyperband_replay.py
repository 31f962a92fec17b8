"""How much of a Hyperband result is the luck of the brackets? Replay recorded learning curves.

    python bench/hyperband_replay.py RESULT.json [--names 200] [--reduction-factors 3 4]
        [--min-resources 1 2 3] [--json]

RESULT.json is what ``bench/tune_hyperband.py --json`` printed. Its unpruned study holds every
trial's dev accuracy at each checkpoint. This script feeds those curves, trial by trial in the
same order, to Optuna's real ``HyperbandPruner`` and lets it decide when to stop each trial.
Optuna assigns trials to brackets by hashing the study name with the trial number, so one run
of the benchmark is one draw. Here the replay is repeated under ``--names`` study names, which
gives the spread of outcomes for each setting.

This is a simulation, not a measurement. Each trial's accuracies are the recorded ones (training
is deterministic for a given configuration and seed, so a pruned trial's curve is a prefix of its
unpruned one). The compute of a trial stopped after k of n checkpoints is modelled as
``setup + (cpu_s - setup) * k / n``. Here ``setup`` is the per-trial fixed cost (loading,
tokenising), fitted from the measured pruned trials in the file, or given with ``--setup-cpu-s``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
from pathlib import Path
from typing import Any


def load(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    text = path.read_text()
    report = json.loads(text[text.index('{\n  "bench"') :]) if "bench" in text else {}
    if report.get("bench") != "tune_hyperband":
        sys.exit(f"{path}: not the JSON of bench/tune_hyperband.py --json")
    none = [t for t in report["trials"] if t["study"] == "none"]
    pruned = [t for t in report["trials"] if t["study"] != "none"]
    if not none or any(not t.get("curve") for t in none):
        sys.exit(f"{path}: the unpruned study has no learning curves (rerun the benchmark)")
    return sorted(none, key=lambda t: t["number"]), pruned, report


def fitted_setup(none: list[dict[str, Any]], pruned: list[dict[str, Any]]) -> float:
    """Per-trial fixed CPU seconds, from trials measured both pruned (k of n) and whole."""
    full = {t["number"]: t for t in none}
    fits = []
    for t in pruned:
        whole = full.get(t["number"])
        if t["state"] != "pruned" or whole is None:
            continue
        frac = len(t["curve"]) / len(whole["curve"])
        if 0 < frac < 1:
            fits.append((t["cpu_s"] - whole["cpu_s"] * frac) / (1 - frac))
    return max(0.0, statistics.median(fits)) if fits else 0.0


def replay(
    trials: list[dict[str, Any]], name: str, rf: int, min_resource: int, setup: float
) -> tuple[float, float | None, int]:
    """(compute, best accuracy, pruned) of one replayed Hyperband study."""
    import optuna

    n = len(trials[0]["curve"])
    pruner = optuna.pruners.HyperbandPruner(
        min_resource=min_resource, max_resource=n, reduction_factor=rf
    )
    study = optuna.create_study(direction="maximize", pruner=pruner, study_name=name)
    cost = 0.0
    pruned = 0

    def objective(trial: Any) -> float:
        nonlocal cost, pruned
        t = trials[trial.number]
        curve = t["curve"]
        for k, acc in enumerate(curve, start=1):
            trial.report(acc, k)
            # as in frugal's tune: a prune request at the last checkpoint completes the trial
            if k < len(curve) and trial.should_prune():
                cost += setup + (t["cpu_s"] - setup) * k / len(curve)
                pruned += 1
                raise optuna.TrialPruned()
        cost += t["cpu_s"]
        return float(t["accuracy"])

    study.optimize(objective, n_trials=len(trials))
    done = [t.value for t in study.trials if t.value is not None]
    return cost, (max(done) if done else None), pruned


def main() -> None:
    import optuna

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("result", type=Path, help="JSON printed by bench/tune_hyperband.py --json")
    ap.add_argument("--names", type=int, default=200, help="study names to replay under")
    ap.add_argument("--reduction-factors", type=int, nargs="+", default=[3, 4])
    ap.add_argument("--min-resources", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--setup-cpu-s", type=float, default=None, help="default: fitted")
    ap.add_argument("--max-gap", type=float, default=0.5, help="target: points below unpruned")
    ap.add_argument("--max-compute", type=float, default=0.40, help="target: compute fraction")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    none, pruned, report = load(args.result)
    setup = args.setup_cpu_s if args.setup_cpu_s is not None else fitted_setup(none, pruned)
    total = sum(t["cpu_s"] for t in none)
    best_none = max(t["accuracy"] for t in none)
    rows = []
    for rf, mr in itertools.product(args.reduction_factors, args.min_resources):
        if mr >= len(none[0]["curve"]):
            continue
        outcomes = [replay(none, f"replay-{i}", rf, mr, setup) for i in range(args.names)]
        fractions = [c / total for c, _, _ in outcomes]
        gaps = [best_none - (b if b is not None else 0.0) for _, b, _ in outcomes]
        met = [
            f <= args.max_compute and g <= args.max_gap
            for f, g in zip(fractions, gaps, strict=True)
        ]
        rows.append(
            {
                "reduction_factor": rf,
                "min_resource": mr,
                "compute_median": statistics.median(fractions),
                "compute_p10": statistics.quantiles(fractions, n=10)[0],
                "compute_p90": statistics.quantiles(fractions, n=10)[-1],
                "gap_median": statistics.median(gaps),
                "gap_p90": statistics.quantiles(gaps, n=10)[-1],
                "share_gap_ok": sum(g <= args.max_gap for g in gaps) / len(gaps),
                "share_met": sum(met) / len(met),
            }
        )
    head = list(rows[0])
    print(" | ".join(head), file=sys.stderr)
    for r in rows:
        print(" | ".join(f"{r[k]:.2f}" for k in head), file=sys.stderr)
    if args.json:
        out = {
            "bench": "hyperband_replay",
            "simulation": True,
            "source": str(args.result),
            "source_seed": report.get("seed"),
            "trials": len(none),
            "checkpoints": len(none[0]["curve"]),
            "best_unpruned": best_none,
            "setup_cpu_s": setup,
            "names": args.names,
            "rows": rows,
        }
        print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
