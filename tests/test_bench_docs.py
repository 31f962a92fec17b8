"""docs/benchmarks.md quotes the committed result files, not figures typed by hand.

The optimize table's rows are checked against bench/results/optimize_minilm.json: throughput,
ratio to fp32 and Spearman on each split, to the digits the table prints.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROWS = {
    "`SentenceTransformer.encode` fp32": "sentence-transformers fp32",
    "Optimum ORT dynamic int8 (`avx512_vnni`)": "optimum ort int8 (avx512_vnni)",
    "**frugal, chosen within 1 point**": "frugal chosen",
}


def _section(text: str, title: str) -> str:
    start = text.index(title)
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def _number(cell: str) -> float:
    return float(cell.replace("*", "").replace("x", "").replace("−", "-").strip())


def test_optimize_table_matches_its_result_file() -> None:
    result = json.loads((ROOT / "bench/results/optimize_minilm.json").read_text())
    section = _section((ROOT / "docs/benchmarks.md").read_text(), "## Optimize: all-MiniLM")
    assert "bench/results/optimize_minilm.json" in section
    seen = set()
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] not in ROWS:
            continue
        row = result["rows"][ROWS[cells[0]]]
        seen.add(cells[0])
        assert int(cells[2]) == row["batch_size"]
        assert _number(cells[3]) == round(row["sentences_per_s"])
        assert _number(cells[4]) == round(row["ratio"], 2)
        for col, key in ((5, "spearman_select"), (7, "spearman_final"), (9, "spearman_train")):
            assert _number(cells[col]) == round(row[key], 2), (cells[0], key)
    assert seen == set(ROWS)
    # the targets paragraph states the checks the script computed
    ratio = result["rows"]["frugal chosen"]["ratio"]
    assert re.search(rf"\*\*{ratio:.2f}x\*\* the fp32 baseline", section)
    checks = result["checks"]
    assert ("4x is met" in section) == checks["ratio_ge_4"]
    assert ("5x is not met" in section) == (not checks["ratio_ge_5"])
    assert ("2x target is not met" in section) == (not checks["ge_2x_optimum"])


CLASSIFY_ROWS = {
    "`SentenceTransformer.encode` fp32": "sentence-transformers fp32",
    "frugal runner, original fp32": "frugal runner, original fp32",
    "**frugal, chosen within 1 point**": "frugal chosen",
}


def test_classification_table_matches_its_result_file() -> None:
    result = json.loads((ROOT / "bench/results/optimize_classify_trec.json").read_text())
    section = _section((ROOT / "docs/benchmarks.md").read_text(), "## Optimize on classification")
    assert "bench/results/optimize_classify_trec.json" in section
    seen = set()
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] not in CLASSIFY_ROWS:
            continue
        row = result["rows"][CLASSIFY_ROWS[cells[0]]]
        seen.add(cells[0])
        assert _number(cells[3]) == round(row["texts_per_s"])
        assert _number(cells[4]) == round(row["ratio"], 2)
        assert _number(cells[5]) == round(row["accuracy_select"], 2)
        assert _number(cells[6]) == round(row["accuracy_final"], 2)
    assert seen == set(CLASSIFY_ROWS)
    assert ("not met" in section) == (not result["checks"]["ratio_ge_4"])
