"""Shared pieces of the training benchmarks (not part of the library).

Data: SST-2 from ``../shared/data/sst2`` (or ``$FRUGAL_SHARED_DATA``), seeded subsets. Each
measured fine-tune runs in a fresh subprocess (``run_variant``) so its peak memory is its
own; every run is also a run in a benchmark ledger (a temporary SQLite file unless
``--ledger`` is given).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FRUGAL_SHARED_DATA", ROOT.parent / "shared" / "data"))


def sst2(train_rows: int, dev_rows: int | None, seed: int = 0) -> tuple[Any, Any]:
    """(train, dev) SST-2 subsets; ``dev_rows`` None keeps the whole dev file (872 rows)."""
    from frugalml.data import load_data

    folder = SHARED / "sst2"
    if not folder.is_dir():
        sys.exit(f"SST-2 not found at {folder} (set FRUGAL_SHARED_DATA)")
    train = load_data(folder / "stsa.binary.train").sample(train_rows, seed=seed)
    dev = load_data(folder / "stsa.binary.dev")
    if dev_rows is not None:
        dev = dev.sample(dev_rows, seed=seed)
    return train, dev


def run_variant(
    script: str, spec: dict[str, Any], env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run ``script --one SPEC_JSON`` in a fresh interpreter (``env`` added to its
    environment); its last stdout line is JSON."""
    out = subprocess.run(
        [sys.executable, script, "--one", json.dumps(spec)],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
    )
    if out.returncode != 0:
        sys.stderr.write(out.stderr[-4000:])
        raise SystemExit(f"variant {spec} failed (exit {out.returncode})")
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def usage_figures(result: Any) -> dict[str, Any]:
    u = result.usage
    return {
        "wall_s": u.wall_s,
        "cpu_s": u.cpu_s,
        "peak_host_mib": u.peak_host_bytes / 2**20,
        "energy_j": u.energy_j,
        "energy_source": u.energy_source,
        "cost_usd": u.cost_usd,
    }


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    """A plain markdown table on stderr (stdout is kept for JSON)."""

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.3e}"
        return str(v)

    sys.stderr.write("| " + " | ".join(columns) + " |\n")
    sys.stderr.write("|" + "---|" * len(columns) + "\n")
    for row in rows:
        sys.stderr.write("| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |\n")
