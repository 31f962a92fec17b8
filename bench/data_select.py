"""Benchmark: fine-tune on an informative half of the data instead of all of it.

Fine-tunes the bundled MiniLM on SST-2 train subsets and scores each on the SST-2 dev set:

- ``full``: the whole pool (``--pool`` rows of SST-2 train, the "100%"),
- ``random``: a seeded, label-stratified ``--fraction`` of it (the baseline to beat),
- one arm per ``--strategies`` entry: the same fraction chosen by ``frugal data select``.

Every arm uses the same training settings and seeds; arms are interleaved within each seed so
machine load falls on all of them alike. Compute is the ledger's figure: each fine-tune is a
``finetune`` run, each selection a ``data`` run, and the MiniLM embedding of the pool (shared
by the strategies) one more ``data`` run whose cost is charged to every strategy that used it.

    flock /tmp/frugal-cpu.lock python bench/data_select.py --json

Prints JSON (``--json``) or a table: per arm, dev accuracy (mean and per seed), training
seconds and $, selection seconds and $, and the accuracy gap to ``random``.
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

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("FRUGAL_SHARED_DATA", ROOT.parent / "shared" / "data"))


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA,
        help="folder with sst2/stsa.binary.{train,dev} (default ../shared/data)",
    )
    p.add_argument(
        "--pool",
        type=int,
        default=2000,
        help="rows of SST-2 train used as the 100%% pool (seeded sample)",
    )
    p.add_argument("--fraction", type=float, default=0.5)
    p.add_argument(
        "--strategies",
        nargs="+",
        default=["uncertainty", "diversity"],
        help="arms to compare with random: a strategy, STRATEGY:SHARE (that arm's random "
        "share), or clean+random (frugal data clean, then a random draw)",
    )
    p.add_argument("--random-share", type=float, default=0.0)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--recipe", default="full", choices=["full", "lora"])
    p.add_argument("--learning-rate", type=float, default=1e-4)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--embedder", default="minilm", choices=["minilm", "tfidf"])
    p.add_argument("--no-full", action="store_true", help="skip the 100%% arm")
    p.add_argument("--ledger", default=None, help="ledger URL or path (default: frugal's)")
    p.add_argument("--json", action="store_true", help="print JSON")
    return p.parse_args(argv)


def _cost(usage: Any) -> dict[str, float]:
    if usage is None:
        return {"wall_s": 0.0, "cpu_s": 0.0, "cost_usd": 0.0, "energy_j": 0.0}
    return {
        "wall_s": usage.wall_s,
        "cpu_s": usage.cpu_s,
        "cost_usd": usage.cost_usd,
        "energy_j": usage.energy_j,
    }


def _add(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    return {k: a.get(k, 0.0) + b.get(k, 0.0) for k in set(a) | set(b)}


def _choose(arm: str, pool: Any, features: Any, args: argparse.Namespace, seed: int) -> list[int]:
    """The rows of ``pool`` an arm trains on.

    ``STRATEGY[:SHARE]`` is ``frugal data select``; ``clean+random`` is ``frugal data clean``
    (duplicates and label issues out) followed by a random, label-stratified draw of the same
    number of rows from what is left.
    """
    from frugalml.train.data import AuditConfig, SelectConfig, audit, select_rows
    from frugalml.train.data.select import select, subset_size

    if arm == "clean+random":
        kept = audit(pool, AuditConfig(embedder=args.embedder, seed=seed), features=features).kept()
        n = subset_size(len(pool), args.fraction)
        if n > len(kept):
            raise SystemExit(f"cleaning left {len(kept)} rows, fewer than the {n} to draw")
        labels = [pool.labels[i] for i in kept]
        picked = select(len(kept), labels, SelectConfig(n / len(kept), "random", seed=seed))
        return sorted(kept[i] for i in picked)
    strategy, _, share = arm.partition(":")  # "uncertainty:0.5": half of each quota random
    sc = SelectConfig(
        fraction=args.fraction,
        strategy=strategy,
        seed=seed,
        random_share=float(share or args.random_share) if strategy != "random" else 0.0,
    )
    feats = features if strategy != "random" else None
    return select_rows(pool, sc, embedder=args.embedder, features=feats).indices


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = _args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from frugalml.data import load_data
    from frugalml.ledger import Ledger
    from frugalml.measure.track import track
    from frugalml.train import FinetuneConfig, finetune
    from frugalml.train.data import embed
    from frugalml.train.data.embed import row_texts

    train_file = args.data_dir / "sst2" / "stsa.binary.train"
    dev_file = args.data_dir / "sst2" / "stsa.binary.dev"
    if not train_file.exists():
        sys.exit(f"SST-2 not found under {args.data_dir} (pass --data-dir)")
    pool = load_data(train_file).sample(args.pool, seed=0)
    dev = load_data(dev_file)
    book = Ledger(args.ledger)
    t_start = time.perf_counter()

    # The pool's embedding is shared by the strategies: measured once, charged to each.
    features = None
    feat_cost: dict[str, float] = {}
    if args.strategies:
        with track(
            "bench data_select embed pool",
            kind="data",
            ledger=book,
            params={"rows": len(pool), "embedder": args.embedder},
        ) as run:
            features = embed(row_texts(pool), args.embedder, progress=None)
        feat_cost = _cost(run.usage)

    arms = (["full"] if not args.no_full else []) + ["random", *args.strategies]
    results: dict[str, dict[str, Any]] = {
        a: {"accuracy": [], "train": [], "select": [], "rows": [], "loop_s": [], "steps": []}
        for a in arms
    }
    for seed in args.seeds:
        cfg = FinetuneConfig(
            recipe=args.recipe,
            learning_rate=args.learning_rate,
            batch_size=args.batch_size,
            epochs=args.epochs,
            max_length=args.max_length,
            eval_mode="none",
            seed=seed,
        )
        for arm in arms:
            select_cost: dict[str, float] = {}
            if arm == "full":
                subset = pool
            else:
                with track(
                    f"bench data_select select {arm} seed {seed}",
                    kind="data",
                    ledger=book,
                    params={"strategy": arm, "seed": seed},
                ) as run:
                    indices = _choose(arm, pool, features, args, seed)
                select_cost = _cost(run.usage)
                if arm != "random":
                    select_cost = _add(select_cost, feat_cost)
                subset = pool.take(indices)
            res = finetune(
                "minilm", subset, dev, cfg, ledger=book, name=f"bench data_select {arm} seed {seed}"
            )
            r = results[arm]
            r["accuracy"].append(res.accuracy)
            r["train"].append(_cost(res.usage))
            r["select"].append(select_cost)
            r["rows"].append(len(subset))
            r["loop_s"].append(res.loop_s)
            r["steps"].append(res.steps)
            print(
                f"seed {seed} {arm:12s} rows {len(subset):5d} dev acc {res.accuracy:.2f} "
                f"train {res.usage.wall_s if res.usage else 0:.0f} s",
                file=sys.stderr,
                flush=True,
            )
    book.close()

    def mean(xs: list[float]) -> float:
        return statistics.fmean(xs) if xs else 0.0

    summary: dict[str, Any] = {}
    for arm, r in results.items():
        train = {
            k: mean([c[k] for c in r["train"]]) for k in ("wall_s", "cpu_s", "cost_usd", "energy_j")
        }
        sel = {
            k: mean([c.get(k, 0.0) for c in r["select"]])
            for k in ("wall_s", "cpu_s", "cost_usd", "energy_j")
        }
        summary[arm] = {
            "rows": r["rows"][0] if r["rows"] else 0,
            "accuracy_mean": mean(r["accuracy"]),
            "accuracy_per_seed": r["accuracy"],
            "train": train,
            "train_loop_s": mean(r["loop_s"]),
            "train_steps": mean(r["steps"]),
            "select": sel,
            "total_cost_usd": train["cost_usd"] + sel["cost_usd"],
            "total_wall_s": train["wall_s"] + sel["wall_s"],
        }
    base = summary["random"]["accuracy_mean"]
    for s in summary.values():
        s["accuracy_vs_random"] = s["accuracy_mean"] - base
        if "full" in summary and summary["full"]["total_cost_usd"] > 0:
            s["cost_vs_full"] = s["total_cost_usd"] / summary["full"]["total_cost_usd"]
    best = max(args.strategies, key=lambda a: summary[a]["accuracy_mean"], default=None)
    out = {
        "benchmark": "data_select",
        "data": {
            "train": str(train_file),
            "dev": str(dev_file),
            "pool_rows": len(pool),
            "dev_rows": len(dev),
        },
        "settings": {
            "fraction": args.fraction,
            "seeds": args.seeds,
            "recipe": args.recipe,
            "learning_rate": args.learning_rate,
            "batch_size": args.batch_size,
            "epochs": args.epochs,
            "max_length": args.max_length,
            "embedder": args.embedder,
            "random_share": args.random_share,
        },
        "embedding": feat_cost,
        "arms": summary,
        "best_strategy": best,
        "best_beats_random": bool(best and summary[best]["accuracy_mean"] > base),
        "wall_s": time.perf_counter() - t_start,
        "energy_source": "estimate unless RAPL/NVML were readable (see frugal show RUN)",
    }
    if args.json:
        sys.stdout.write(json.dumps(out, indent=2) + "\n")
    else:
        print(
            f"{'arm':16s} {'rows':>5s} {'steps':>5s} {'dev acc':>8s} {'vs random':>9s} "
            f"{'train s':>8s} {'train cpu s':>11s} {'select s':>8s} {'total $':>10s}"
        )
        for arm, s in summary.items():
            print(
                f"{arm:16s} {s['rows']:5d} {s['train_steps']:5.0f} {s['accuracy_mean']:8.2f} "
                f"{s['accuracy_vs_random']:+9.2f} {s['train']['wall_s']:8.1f} "
                f"{s['train']['cpu_s']:11.1f} {s['select']['wall_s']:8.1f} "
                f"{s['total_cost_usd']:10.6f}"
            )
    return out


if __name__ == "__main__":
    main()
