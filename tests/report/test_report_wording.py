"""The chosen model's cost in words: a cheaper candidate reads "× the cost, N% less".

Ratios are candidate / original everywhere they are worded (units.versus); the record's
``cost_ratio`` field counts the other way (how many times cheaper), and a report that fed it
to the wording called a model at 40% of the cost "2.53× the cost, 153% more" (the demo on
2026-12-01). Checked on the markdown report with figures made by hand.
"""

from __future__ import annotations

import json
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


PRODUCTION = {
    "cost_usd": 0.005017,
    "energy_j": 1078.07,
    "energy_source": "estimate",
    "cpu_s": 308.0,
    "wall_s": 202.4,
    "co2_g": 0.14,
    "runs": ["981ad7ff53114ae494e1459d4c2edede"],
    "candidates": 21,
}


def test_producing_a_chosen_model_costs_the_whole_search(tmp_path: Path) -> None:
    """The statement's "producing the candidate" is the search's production cost (what the
    optimize report.md shows), from the model's manifest or from the optimize run above a
    candidate run, not the last candidate's own 2-second run."""
    from frugalml.ledger import Ledger
    from frugalml.records import Usage
    from frugalml.report.sources import training_of

    manifest = {
        "optimize_run_id": "981ad7ff5311",
        "candidate_run_id": "x",
        "production_cost": PRODUCTION,
    }
    with Ledger(f"sqlite:///{tmp_path / 'ledger.db'}") as book:
        t = training_of(book, None, manifest)
        assert t is not None and t.kind == "optimize" and t.run_id == "981ad7ff5311"
        assert t.cost_usd == 0.005017 and t.wall_hours == 202.4 / 3600
        assert "21 candidates" in t.what
        best = tmp_path / "out" / "best"
        best.mkdir(parents=True)
        parent = book.record(
            "optimize minilm", kind="optimize", status="finished",
            params={"production_cost": PRODUCTION}, artifacts={"best": str(best)},
        )  # fmt: skip
        usage = Usage(
            wall_s=2.0, cpu_s=0.5, device_s=0.0, peak_host_bytes=1, peak_device_bytes=0,
            energy_j=1.0, energy_source="estimate", instance_cost_usd=0.0000936,
            energy_cost_usd=0.0, cost_usd=0.0000936, co2_g=0.0, instance="auto", region="auto",
            usd_per_hour=0.0892, usd_per_kwh=0.0, g_co2_per_kwh=0.0,
        )  # fmt: skip
        child = book.record(
            "c07", kind="candidate", status="finished", parent_id=parent, usage=usage,
            params={"passes": ["half_precision"]},
        )  # fmt: skip
        # a candidate the search did not choose cost its own run only
        t = training_of(book, book.get(child), None)
        assert t is not None and t.kind == "candidate" and t.cost_usd == 0.0000936
        (best / "frugal.json").write_text(json.dumps({"candidate_run_id": child}))
        t = training_of(book, book.get(child), None)  # the chosen one: the whole search
        assert t is not None and t.run_id == parent and t.cost_usd == 0.005017
