"""What sets a CPU fine-tune's peak host memory: full vs LoRA, with glibc's default allocator
settings and with large blocks returned to the system at once.

    flock /tmp/frugal-cpu.lock python bench/finetune_memory.py --json \
        [--train-rows 640] [--max-length 64] [--batch-size 32]

Each run fine-tunes MiniLM on a seeded SST-2 train subset (one epoch, no checkpoint
evaluation; dev is scored once at the end on 200 rows) in a fresh process. It reports:

- the memory held after loading and building the model;
- the run's peak RSS (VmHWM);
- the median RSS right after each optimizer step, from step 2 on. Activations are freed
  there, so it is what the weights, gradients and optimizer state hold, plus what the
  allocator keeps;
- the median step time.

The allocator variants: glibc's defaults, and ``MALLOC_MMAP_THRESHOLD_=65536``, which serves
blocks of 64 KiB or more with mmap, so they go back to the system when freed. Batches are
padded to their longest row, so each step allocates tensors of a different size. With the
defaults, freed blocks stay in the heap and RSS creeps up over the steps.
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

ALLOCATORS = {"glibc default": {}, "mmap >= 64 KiB": {"MALLOC_MMAP_THRESHOLD_": "65536"}}


def one(spec: dict[str, Any]) -> dict[str, Any]:
    """One fine-tune with RSS read after every step (runs in its own process)."""
    import psutil

    from frugalml.train import FinetuneConfig, finetune

    train, dev = sst2(spec["train_rows"], 200, seed=spec["seed"])
    proc = psutil.Process()
    after_step: list[int] = []

    def on_step(_step: int, _model: Any, _loss: float) -> None:
        after_step.append(proc.memory_info().rss)

    cfg = FinetuneConfig(
        recipe=spec["recipe"],
        max_length=spec["max_length"],
        batch_size=spec["batch_size"],
        eval_mode="none",
        seed=spec["seed"],
    )
    r = finetune("minilm", train, dev, cfg, ledger=spec["ledger"], on_step=on_step)
    return {
        "recipe": spec["recipe"],
        "allocator": spec["allocator"],
        "setup_mib": r.setup_memory_bytes / 2**20,
        "after_step_mib": median(after_step[1:] or after_step) / 2**20,
        "step_s_median": r.step_s_median,
        "steps": r.steps,
        "trainable_params": r.trainable_params,
        "accuracy": r.accuracy,
        **usage_figures(r),  # peak_host_mib: the run's VmHWM
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--train-rows", type=int, default=640)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ledger", default=None, help="default: a temporary SQLite file")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(json.loads(args.one))))
        return
    ledger = args.ledger or f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}"
    rows = []
    for allocator, env in ALLOCATORS.items():
        for recipe in ("full", "lora"):
            spec = {
                "recipe": recipe,
                "allocator": allocator,
                "train_rows": args.train_rows,
                "max_length": args.max_length,
                "batch_size": args.batch_size,
                "seed": args.seed,
                "ledger": ledger,
            }
            rows.append(run_variant(__file__, spec, env=env))
    print_table(
        rows,
        ["allocator", "recipe", "setup_mib", "after_step_mib", "peak_host_mib", "step_s_median"],
    )
    if args.json:
        report = {
            "bench": "finetune_memory",
            "cpus": os.cpu_count(),
            "train_rows": args.train_rows,
            "max_length": args.max_length,
            "batch_size": args.batch_size,
            "seed": args.seed,
            "rows": rows,
        }
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
