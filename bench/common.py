"""What every benchmark here shares: offline loading, the shared data folder, the thread count
and the CPU named in its JSON. Imported after ``sys.path`` holds this folder (as
``train_common`` is); importing it sets the offline variables, so it comes before
transformers."""

from __future__ import annotations

import os
from pathlib import Path

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
