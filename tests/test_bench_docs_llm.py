"""docs/benchmarks.md's LLM table quotes bench/results/optimize_smollm2.json, not typed figures.

Each row of the "## LLM" section is checked against the result file to the digits it prints:
decode tokens/s, the ratio to fp32, perplexity and its change, mean KL, flips, MBU and $ per
1M output tokens; the targets paragraph states what the file's checks say.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "bench/results/optimize_smollm2.json"


def _bench() -> object:
    spec = importlib.util.spec_from_file_location(
        "optimize_smollm2", ROOT / "bench/optimize_smollm2.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _section(text: str, title: str) -> str:
    start = text.index(title)
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def _number(cell: str) -> float:
    return float(cell.replace("*", "").replace("x", "").replace("%", "").replace("$", "").strip())


@pytest.mark.skipif(not RESULT.exists(), reason="the LLM benchmark has not been committed")
def test_llm_table_matches_its_result_file() -> None:
    result = json.loads(RESULT.read_text(encoding="utf-8"))
    rows_of = _bench().DOC_ROWS  # type: ignore[attr-defined]
    section = _section((ROOT / "docs/benchmarks.md").read_text(encoding="utf-8"), "## LLM")
    assert "bench/results/optimize_smollm2.json" in section
    seen = set()
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] not in rows_of or rows_of[cells[0]] not in result["rows"]:
            continue
        row = result["rows"][rows_of[cells[0]]]
        seen.add(rows_of[cells[0]])
        assert _number(cells[2]) == round(row["decode_tokens_per_s"], 1), cells[0]
        assert _number(cells[3]) == round(row["ratio"], 2), cells[0]
        assert _number(cells[4]) == round(row["perplexity"], 2), cells[0]
        assert _number(cells[5]) == round(row["perplexity_change_pct"], 1), cells[0]
        assert _number(cells[6]) == round(row["mean_kl"], 4), cells[0]
        assert _number(cells[7]) == round(100 * row["flips"]), cells[0]
        assert _number(cells[8]) == round(100 * row["mbu"]), cells[0]
        assert _number(cells[9]) == round(row["usd_per_1m_output_tokens"], 3), cells[0]
    assert seen == set(result["rows"]) & set(rows_of.values())
    assert "fp32 transformers" in seen
    # the targets paragraph says "not met" exactly when a check of the file failed
    assert ("not met" in section) == (not all(result["checks"].values()))


def test_the_markdown_table_prints_every_row_and_the_failed_ones_with_why() -> None:
    bench = _bench()
    row = {
        "engine": "causal_lm", "dtype": "float32", "decode_tokens_per_s": 31.25, "ratio": 1.0,
        "perplexity": 19.5, "perplexity_change_pct": 0.0, "mean_kl": 0.0, "flips": 0.0,
        "mbu": 0.61, "usd_per_1m_output_tokens": 0.8,
    }  # fmt: skip
    info = {"rows": {"fp32 transformers": row}, "failed": {"llama.cpp Q4_1 gguf": "not here"}}
    table = bench.markdown(info)  # type: ignore[attr-defined]
    lines = table.splitlines()
    assert len(lines) == 2 + len(bench.DOC_ROWS)  # type: ignore[attr-defined]
    assert "| 31.2 | 1.00x | 19.50 | +0.0% |" in lines[2] and "| 61% | $0.800 |" in lines[2]
    (llama,) = [line for line in lines if "the bundled Q4_1 GGUF" in line]
    assert llama.endswith("| not here |")
    assert lines[-1].endswith("| not run |")  # neither measured nor failed
