"""Evaluate one candidate in its own process: ``python -m frugalml.search.worker SPEC.json``.

Why a process per candidate: peak memory is the candidate's own (not the search's), thread
settings and ``torch.compile`` state cannot leak between candidates, and a candidate that runs
out of memory or crashes the runtime takes down only this process — the search records the
error and goes on. The measurement itself is ``evaluate`` (the same as ``frugal eval``).

SPEC.json: ``model`` (folder or spec), ``task``, ``data`` (``path`` + ``options`` for
``load_data``), ``seed``, ``device``, ``threads``, ``batch_size``, ``length_sort``,
``instance``, ``region``, ``repeats``, ``reference`` (.npy of fidelity reference outputs or
null), ``out`` (result prefix: ``out.json`` + ``out.npz``, or ``out.error.json``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any

from frugalml.errors import CandidateFailed, FrugalError

KILLED_HINT = "killed by signal {sig} (out of memory?)"


def main(argv: list[str]) -> int:
    spec: dict[str, Any] = json.loads(Path(argv[0]).read_text())
    out = Path(spec["out"])
    try:
        import numpy as np

        from frugalml.data import load_data
        from frugalml.search.evaluate import evaluate

        data = load_data(spec["data"]["path"], **spec["data"].get("options", {}))
        ref = np.load(spec["reference"]) if spec.get("reference") else None
        result = evaluate(spec["model"], spec["task"], data, metric=spec.get("metric"),
                          device=spec.get("device", "cpu"),
                          threads=spec.get("threads"), batch_size=spec.get("batch_size"),
                          length_sort=spec.get("length_sort"), instance=spec.get("instance"),
                          region=spec.get("region"), reference=ref, seed=spec.get("seed", 0),
                          repeats=spec.get("repeats", 3))
        result.save(out)
        return 0
    except (FrugalError, MemoryError) as e:
        msg = str(e) if isinstance(e, FrugalError) else "out of memory"
        _error(out, msg)
        return 3
    except Exception as e:  # a broken candidate must not look like a broken search
        _error(out, f"{type(e).__name__}: {str(e).splitlines()[0][:400] if str(e) else ''}",
               traceback.format_exc()[-4000:])
        return 3


def _error(out: Path, message: str, detail: str = "") -> None:
    out.with_suffix(".error.json").write_text(json.dumps({"error": message, "detail": detail}))


def run_isolated(spec: dict[str, Any], work: Path, timeout_s: float | None = None) -> Any:
    """Run the worker on ``spec``; the ``EvalResult`` or ``CandidateFailed`` with the reason."""
    from frugalml.search.evaluate import EvalResult

    out = Path(spec["out"])
    spec_path = work / (out.name + ".spec.json")
    spec_path.write_text(json.dumps(spec))
    for suffix in (".json", ".npz", ".error.json"):
        out.with_suffix(suffix).unlink(missing_ok=True)
    try:
        proc = subprocess.run([sys.executable, "-m", "frugalml.search.worker", str(spec_path)],
                              capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as e:
        raise CandidateFailed(f"evaluation took longer than {timeout_s:.0f} s") from e
    if out.with_suffix(".error.json").exists():
        err = json.loads(out.with_suffix(".error.json").read_text())
        raise CandidateFailed(err["error"])
    if proc.returncode < 0 or proc.returncode in (137, 134, 139):
        sig = -proc.returncode if proc.returncode < 0 else proc.returncode - 128
        raise CandidateFailed("the evaluation process was " + KILLED_HINT.format(sig=sig))
    if proc.returncode != 0 or not out.with_suffix(".json").exists():
        tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-3:]
        raise CandidateFailed(f"the evaluation process failed (exit {proc.returncode}): "
                              + " | ".join(tail)[:400])
    return EvalResult.read(out)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
