"""Selection: ties inside the measured noise, and the bound held on a split nobody chose on.

Pure functions over records (no model): the figures are the demo's from issue 12."""

from __future__ import annotations

import ast
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from frugalml.errors import BadInput
from frugalml.search.constraints import Cheapest, QualityBound, choose
from frugalml.search.pareto import (
    COST_NOISE_FLOOR,
    QUALITY_TOLERANCE,
    noise_band,
    pareto_front,
    pick,
)


def rec(i: str, q: float, c: float, passes: int = 1, **more: Any) -> dict[str, Any]:
    return {
        "id": i,
        "label": i,
        "quality": q,
        "cost_usd_per_1m": c,
        "status": "ok",
        "higher_is_better": True,
        "passes": [{"name": f"p{n}"} for n in range(passes)],
        **more,
    }


def test_a_cost_difference_inside_the_noise_goes_to_quality() -> None:
    """c09 is 0.3% cheaper than c13 (inside the timing noise) for 0.72 points less: c13."""
    c09, c13 = rec("c09", 99.28, 0.0321, 3), rec("c13", 100.00, 0.0322, 3)
    assert pick([c09, c13])["id"] == "c13"
    bound = QualityBound(100.0, 1.0)
    assert Cheapest().pick([c09, c13], bound)["id"] == "c13"
    assert [r["id"] for r in pareto_front([c09, c13])] == ["c13"]
    # a real saving (beyond both bands) is not a tie
    c20 = rec("c20", 99.28, 0.0321 * (1 - 3 * COST_NOISE_FLOOR), 3)
    assert pick([c20, c13])["id"] == "c20"


def test_a_measured_cost_interval_wider_than_the_floor_makes_a_tie() -> None:
    a = rec("a", 99.0, 1.00, cost_usd_per_1m_low=0.80, cost_usd_per_1m_high=1.20)
    b = rec("b", 99.5, 1.15)
    assert pick([a, b])["id"] == "b"  # 13% dearer, but inside a's measured interval
    band = noise_band(a)
    assert band["cost_usd_per_1m_low"] == 0.80 and band["cost_usd_per_1m_high"] == 1.20
    assert band["quality_high"] - band["quality_low"] == pytest.approx(2 * QUALITY_TOLERANCE)


def test_a_wide_band_does_not_tie_a_record_that_another_beats_beyond_the_noise() -> None:
    """The loaded optimize run of issue 18 (bench/results/optimize_minilm_loaded.json): the
    OpenVINO student had one slow pass, so its band reached 0.0266 and overlapped the 5-block
    student (0.0191, best quality); the ORT 4-block student (0.0156, tight band) beats that
    one beyond the noise, so the 5-block student is not a cost tie and is not picked."""
    ov = rec("c19", 87.03, 0.01436, 3, cost_usd_per_1m_low=0.01343, cost_usd_per_1m_high=0.02663)
    ort = rec("c18", 86.91, 0.01559, 3, cost_usd_per_1m_low=0.01558, cost_usd_per_1m_high=0.01577)
    five = rec("c21", 87.72, 0.01912, 3, cost_usd_per_1m_low=0.01794, cost_usd_per_1m_high=0.01986)
    assert pick([five, ov, ort])["id"] == "c19"
    assert Cheapest().pick([ort, five, ov], QualityBound(87.11, 1.0))["id"] == "c19"
    # without the record that beats it, the wide band is a tie and quality decides
    assert pick([five, ov])["id"] == "c21"


def test_quality_within_the_tolerance_is_a_tie_which_goes_to_the_simpler_pipeline() -> None:
    """c12 and c19 beat the others by 1e-5 points: not a reason to be on the front."""
    simple = rec("c01", 100.0, 1.0, passes=1)
    c12 = rec("c12", 100.0 + 1e-5, 1.0, passes=3)
    c19 = rec("c19", 100.0 + 1e-5, 1.01, passes=4)
    assert [r["id"] for r in pareto_front([simple, c12, c19])] == ["c01"]
    assert pick([c12, simple, c19])["id"] == "c01"


def test_a_batch_size_is_not_complexity_so_a_tie_goes_to_the_cheaper_settings() -> None:
    """The same model at batch 128 (runtime_settings) and at its default batch 32, tied on
    cost inside the noise and on quality: the cheaper median wins, not the shorter list."""
    passes = [{"name": "layer_drop"}, {"name": "onnx_export"}, {"name": "openvino_int8"}]
    b32 = {**rec("c19", 87.03, 0.0150), "passes": passes,
           "cost_usd_per_1m_low": 0.0130, "cost_usd_per_1m_high": 0.0170}  # fmt: skip
    b128 = {**rec("c31", 87.03, 0.0135), "passes": [*passes, {"name": "runtime_settings"}]}
    assert pick([b32, b128])["id"] == "c31"
    # a pass that changes the model still counts: a fourth one loses the same tie
    four = {**b128, "id": "c32", "passes": [*passes, {"name": "prune_structured"}]}
    assert pick([b32, four])["id"] == "c19"


class Fixed:
    """A final-split result whose quality is the same on every resample of its rows."""

    rows_scored = 100

    def __init__(self, quality: float) -> None:
        self.quality = quality

    def quality_on(self, indices: np.ndarray) -> float:
        return self.quality


class Rows:
    """Per-row accuracy (0 or 100 per row): ``quality_on`` is the mean on the given rows."""

    def __init__(self, correct: np.ndarray) -> None:
        self.correct = correct.astype(float) * 100.0
        self.rows_scored = len(correct)
        self.quality = float(self.correct.mean())

    def quality_on(self, indices: np.ndarray) -> float:
        return float(self.correct[indices].mean())


def test_the_bound_is_checked_again_on_the_final_split() -> None:
    """c02 is the cheapest within the bound on the select split but loses 3 points on the
    final split: it is not chosen; c01, within the bound on both, is."""
    base = rec("c00", 90.0, 10.0, passes=0)
    c01 = rec("c01", 89.5, 5.0)
    c02 = rec("c02", 89.4, 2.0)
    final = {"c00": 91.0, "c01": 90.6, "c02": 88.0}
    asked: list[str] = []

    def final_result(r: dict[str, Any]) -> Fixed:
        asked.append(r["id"])
        return Fixed(final[r["id"]])

    best, notes = choose([c01, c02], base, 1.0, final_result)
    assert best is c01 and c01["chosen"] and c01["final_check"] == "passed"
    assert c02["final_check"] == "failed" and c02["final_quality_drop"] == pytest.approx(3.0)
    assert "c02" in notes[0] and "final split" in notes[0]
    assert asked == ["c00", "c02", "c01"]  # the baseline once, then in order of preference
    # none holds on the final split: nothing is chosen
    final["c01"] = 80.0
    for r in (base, c01, c02):
        r.pop("final_quality", None)
    assert choose([c01, c02], base, 1.0, final_result)[0] is None
    # a failed final evaluation (None) never passes, nor does a failed baseline's
    assert choose([c01], rec("c00", 90.0, 10.0, passes=0), 5.0, lambda r: None)[0] is None
    ok = rec("c01", 89.5, 5.0)
    assert choose([ok], rec("c00", 90.0, 10.0, passes=0), 5.0,
                  lambda r: None if r["id"] == "c00" else Fixed(90.0))[0] is None  # fmt: skip
    assert math.isnan(ok["final_drop_bound"])


def test_a_model_at_the_edge_does_not_pass_on_a_point_estimate() -> None:
    """Two candidates each lose exactly 5 of 1,000 final rows (0.5 points, inside a 1-point
    bound). The noisy one disagrees with the original on 55 rows (wrong on 30 it got right,
    right on 25 it got wrong): its drop's spread is about sqrt(55)/10 = 0.74 points, so with
    90% confidence it could be losing ~1.45 points and fails. The steady one differs on only
    those 5 rows (spread ~0.22, 90% bound ~0.8) and passes. With confidence 0.5 (the point
    estimate) the noisy one passes too."""
    n = 1000
    base_ok = np.ones(n, dtype=bool)
    base_ok[:100] = False  # the original: 90% accuracy
    noisy = base_ok.copy()
    noisy[100:130] = False  # 30 rows lost
    noisy[:25] = True  # 25 gained
    steady = base_ok.copy()
    steady[100:105] = False
    results = {"c00": Rows(base_ok), "noisy": Rows(noisy), "steady": Rows(steady)}

    def pair(cheaper_one: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        base = rec("c00", 90.0, 10.0, passes=0)
        return base, [rec(cheaper_one, 89.8, 2.0), rec("other", 89.9, 5.0)]

    base, cands = pair("noisy")
    best, notes = choose(cands, base, 1.0, lambda r: results.get(r["id"], Rows(base_ok)))
    noisy_rec = cands[0]
    assert noisy_rec["final_quality_drop"] == pytest.approx(0.5)
    assert noisy_rec["final_check"] == "failed" and noisy_rec["final_drop_bound"] > 1.2
    assert noisy_rec["final_confidence"] == 0.9
    assert best is not None and best["id"] == "other"  # the next in order, equal to the base
    assert "90% one-sided bound" in notes[0]

    base, cands = pair("steady")
    best, _ = choose(cands, base, 1.0, lambda r: results.get(r["id"], Rows(base_ok)))
    assert best is cands[0] and 0.5 <= best["final_drop_bound"] < 1.0

    base, cands = pair("noisy")
    best, _ = choose(cands, base, 1.0, lambda r: results.get(r["id"], Rows(base_ok)), 0.5)
    assert best is cands[0] and best["final_drop_bound"] == pytest.approx(0.5)


@pytest.mark.parametrize("confidence", [0.4, 1.0, math.nan])
def test_a_confidence_outside_its_range_is_refused(confidence: float) -> None:
    with pytest.raises(BadInput, match="--final-confidence"):
        choose([], rec("c00", 90.0, 10.0, passes=0), 1.0, lambda r: None, confidence)


def test_search_does_not_import_report() -> None:
    """Layers run one way: search returns its result, the caller writes the reports."""
    import frugalml.search

    root = Path(frugalml.search.__file__).parent
    for file in root.rglob("*.py"):
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            assert not any(n.startswith(("frugalml.report", "frugalml.cli")) for n in names), file


def test_untried_counts_queued_and_unexpanded_tiers() -> None:
    """A budget that ends after the first variant leaves the rest of the convert tier and the
    whole structure tier untried (runtime variants depend on results: not counted)."""
    from frugalml.passes import LayerDrop, OnnxExport, QuantizeDynamic
    from frugalml.search.space import Strategy

    strategy = Strategy(
        {"convert": [(OnnxExport(),), (QuantizeDynamic(),)], "structure": [(LayerDrop(keep=2),)]},
        bound_max_drop=1.0,
    )
    assert strategy.untried() == 1 + 3  # the baseline, then every pipeline
    base = strategy.ask()
    assert base is not None
    strategy.tell(base, {**rec(base.id, 90.0, 10.0), "batch_size": 32})
    first = strategy.ask()
    assert first is not None and first.tier == "convert"
    assert strategy.untried() == 2  # one convert + one structure


def test_a_fine_tuned_original_adds_its_fine_tune_to_the_production_cost(tmp_path: Path) -> None:
    """The lineage of an optimized fine-tuned model: the search, plus the fine-tune run its
    manifest names (``run_id``), as the ledger recorded it."""
    import json

    from frugalml.ledger import Ledger
    from frugalml.measure.track import track
    from frugalml.search.result import ProductionCost
    from frugalml.search.runner import _training_run
    from tinymodels import tiny_bert

    book = Ledger(f"sqlite:///{tmp_path / 'l.db'}")
    with track("finetune tiny", kind="finetune", ledger=book) as run:
        sum(i * i for i in range(200_000))  # some CPU to measure
    folder = tiny_bert(tmp_path / "tuned")
    (folder / "frugal.json").write_text(json.dumps({"kind": "hf-encoder", "run_id": run.id}))
    trained = _training_run(book, str(folder))
    assert trained is not None and trained.id == run.id and trained.usage is not None
    search = ProductionCost(1.0, 10.0, "estimate", 5.0, 60.0, 0.1, ("opt",), 3)
    total = search.plus(trained.usage, trained.id)
    assert total.runs == ("opt", run.id) and total.candidates == 3
    assert total.cpu_s == pytest.approx(5.0 + trained.usage.cpu_s)
    assert total.wall_s == pytest.approx(60.0 + trained.usage.wall_s)
    assert total.cost_usd == pytest.approx(1.0 + trained.usage.cost_usd)
    assert _training_run(book, str(tiny_bert(tmp_path / "plain"))) is None  # no lineage
