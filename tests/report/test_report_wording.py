"""The chosen model's cost in words: a cheaper candidate reads "× the cost, N% less".

Ratios are candidate / original everywhere they are worded (units.versus); the record's
``cost_ratio`` field counts the other way (how many times cheaper), and a report that fed it
to the wording called a model at 40% of the cost "2.53× the cost, 153% more" (the demo on
2026-12-01). Checked on the markdown report with figures made by hand.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from frugalml.report.markdown import _verdict


def _record(cost: float, throughput: float, quality: float) -> dict[str, object]:
    return {
        "label": "x",
        "cost_usd_per_1m": cost,
        "throughput_per_s": throughput,
        "quality": quality,
        "quality_drop": 100.0 - quality,
        "final_quality": quality,
        "final_quality_drop": 100.0 - quality,
        "size_bytes": 2**20,
        "cost_ratio": 0.0921 / cost,  # as the search records it: original / candidate
        "throughput_ratio": throughput / 269.0,
    }


def test_a_cheaper_choice_reads_less_not_more() -> None:
    result = SimpleNamespace(
        baseline=_record(0.0921, 269.0, 100.0),
        best=_record(0.0364, 681.0, 100.0),
        production_cost=None,
        out=Path("out"),
        metric="agreement",
        stop_reason="completed",
        untried=0,
    )
    text = "\n".join(_verdict(result))  # type: ignore[arg-type]
    # 0.0364 / 0.0921 = 0.395...: "0.40× the cost, 60% less"
    assert "$0.0364 vs $0.0921 (0.40× the cost, 60% less)" in text, text
    assert "more)" not in text.split("cost per 1M")[1].splitlines()[0]
    assert "2.53× the throughput, 153% more" in text
