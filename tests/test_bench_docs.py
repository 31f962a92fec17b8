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


def _pct(cell: str) -> float:
    return _number(cell.replace("%", "").replace("+", ""))


def test_placement_tables_match_their_result_file() -> None:
    """The placement section's batch rows and SmolLM2 decode row are the JSON's figures: measured,
    predicted and error, for the line model, its padded variant and the one-point model."""
    result = json.loads((ROOT / "bench/results/place_calibration.json").read_text())
    section = _section((ROOT / "docs/benchmarks.md").read_text(), "## Placement: the roofline")
    assert "bench/results/place_calibration.json" in section
    by_batch = {r["batch_size"]: r for r in result["rows"]}
    seen = set()
    for line in section.splitlines():
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        head = cells[0].split(" ")[0]
        if head.isdigit() and int(head) in by_batch:
            row = by_batch[int(head)]
            seen.add(row["batch_size"])
            assert cells[1] == row["role"]
            assert _number(cells[2]) == round(row["measured_per_s"], 1)
            for col, value, err in (
                (3, "predicted_padded_per_s", "error_padded_pct"),  # the model: padded FLOPs
                (5, "predicted_per_s", "error_pct"),  # the same line on unpadded tokens
                (7, "predicted_one_point_per_s", "error_one_point_pct"),
            ):
                assert _number(cells[col]) == round(row[value], 1), (head, value)
                assert _pct(cells[col + 1]) == round(row[err]), (head, err)
        elif cells[0].startswith("SmolLM2"):
            seen.add("decode")
            dec = result["decode"]
            assert _number(cells[1]) == round(dec["measured_tokens_per_s"], 1)
            assert _number(cells[2]) == round(dec["predicted_tokens_per_s"], 1)
            assert _pct(cells[3]) == round(dec["error_pct"])
    assert seen == {*by_batch, "decode"}
    cal = result["calibration"]
    assert f"overhead {cal['overhead_ms']:.2f} ms" in section
    assert f"efficiency {cal['efficiency']:.2f}" in section
    assert f"largest held-out error {result['max_abs_error_pct']:.0f}%" in section
    assert f"unpadded tokens: largest {result['max_abs_error_unpadded_pct']:.0f}%" in section
    assert ("**met**" in section) == result["within_25_pct"]
    # the best rounds and the earlier runs are quoted from their files too
    if "best_round" in result:
        assert f"largest {result['best_round']['max_abs_error_pct']:.0f}%." in section
    earlier = json.loads((ROOT / "bench/results/place_calibration_earlier.json").read_text())
    flat = " ".join(section.split())
    for run in earlier["runs"]:
        rows = {r["batch_size"]: r for r in run["rows"]}
        errs = [rows[8]["error_pct"], rows[128]["error_pct"], run["decode"]["error_pct"]]
        signs = [f"{e:+.0f}%".replace("-", "−") if round(e) else "0" for e in errs]
        assert f"{run['when'][11:16]} UTC: {' / '.join(signs)}" in flat, run["when"]
