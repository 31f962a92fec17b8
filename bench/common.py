"""What every benchmark here shares: offline loading, the shared data folder, the thread count
and the CPU named in its JSON. Imported after ``sys.path`` holds this folder (as
``train_common`` is); importing it sets the offline variables, so it comes before
transformers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("FRUGAL_SHARED_DATA", HERE.parent.parent / "shared" / "data"))
THREADS = 2  # this machine's cores: every benchmark times with both


def cpu() -> str:
    """The CPU model and logical core count, as the benchmark JSON records them."""
    from frugalml.measure.hardware import hardware

    hw = hardware()
    return f"{hw.cpu_model}, {hw.cpu_logical_cores} logical cores"


def final_check(candidates: list[dict[str, Any]]) -> dict[str, Any]:
    """A search's final check, from its candidate records: the chosen one's drop on "final"
    must stay within the bound at ``final_confidence`` (one-sided, paired bootstrap); its
    point drop, the bound's end, and the candidates that failed the check."""
    best = next((r for r in candidates if r.get("chosen")), None)
    return {
        "final_confidence": best.get("final_confidence") if best else None,
        "final_quality_drop": best.get("final_quality_drop") if best else None,
        "final_drop_bound": best.get("final_drop_bound") if best else None,
        "failed_final_check": [r["label"] for r in candidates if r.get("final_check") == "failed"],
    }
