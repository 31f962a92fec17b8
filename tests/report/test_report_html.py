"""The HTML report: self-contained, escaped by its template, and laid out by a real headless
Chromium at 1400 and 800 px wide with nothing hidden behind a horizontal scroll."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
from pathlib import Path

import pytest

from frugalml.measure.bootstrap import DeltaCI
from frugalml.report.html import Point, ReportData, front_flags, render, write
from frugalml.report.statement import Side, build_statement

# (key, name, quality, $ per 1M, throughput/s): a small search where the front is known. The
# names are the search's pass labels: long, and alike for their first 60 characters.
LONG = "onnx_export(opset=17) + quantize_dynamic(dtype=qint8, per_channel=True)"
CANDIDATES = [
    ("c00", "baseline (original)", 82.0, 0.90, 120.0),
    ("c01", f"{LONG} + runtime_settings(batch_size=8)", 81.6, 0.30, 360.0),  # front, chosen
    ("c02", "prune(amount=0.3) + quantize_dynamic(dtype=qint8)", 79.0, 0.12, 900.0),  # front
    ("c03", "half_precision(dtype=float16)", 82.0, 0.85, 127.0),  # front: as good, cheaper
    ("c04", f"{LONG} + runtime_settings(batch_size=16)", 81.0, 0.45, 240.0),  # dominated
    ("c05", f"{LONG} + runtime_settings(batch_size=32)", 80.5, 0.50, 216.0),  # dominated
    ("c06", "drop_layers(keep=2) + distill(steps=200)", 75.0, 0.10, 1080.0),  # front
]
FRONT = {"c01", "c02", "c03", "c06"}
BOUND = 1.0  # points: c01 (−0.40) and c03 are within it, c02 (−3) and c06 (−7) are not


def _side(key: str, quality: float, cost: float) -> Side:
    return Side(key, "test", "similarity", "spearman", True, quality, cost_usd_per_1m=cost)


def _data(chosen: str = "c01", on_pareto_given: bool = False, **extra: object) -> ReportData:
    points = [
        Point(
            name,
            q,
            c,
            passes="" if key == "c00" else name,
            figures={
                "throughput_per_s": t,
                "latency_ms_p50": 1e3 / t * 8,
                "latency_ms_p99": 1.5e3 / t * 8,
                "energy_j_per_1k": 40 * c,
                "energy_source": "estimate",
                "peak_memory_bytes": 300 * 2**20,
                "size_bytes": 90 * 2**20 if key == "c00" else 25 * 2**20,
            },
            on_pareto=(key in FRONT) if on_pareto_given else None,
            chosen=key == chosen,
            baseline=key == "c00",
            run_id=f"{i:04d}abcd",
            key=key,
        )
        for i, (key, name, q, c, t) in enumerate(CANDIDATES)
    ]
    points.append(
        Point(
            "broken <script>",
            None,
            None,
            passes="prune(0.9)",
            status="failed",
            error="CandidateFailed: NaN outputs",
            key="c07",
        )
    )
    statement = None
    for key, _name, q, c, _t in CANDIDATES:
        if key == chosen:  # the paired bootstrap of chosen − baseline, ±0.15 points around it
            ci = DeltaCI(q - 82.0, q - 82.15, q - 81.85, 0.95, 1000, 750, 0)
            statement = build_statement(_side("c00", 82.0, 0.90), _side(key, q, c), ci)
    return ReportData(
        "frugal optimize: minilm",
        "similarity",
        "spearman",
        True,
        tuple(points),
        data="sts-dev.csv",
        n_items=750,
        hardware={"cpu_model": "AMD EPYC", "cpu_logical_cores": 2, "memory_bytes": 24 * 2**30},
        price={
            "instance": "auto",
            "usd_per_hour": 0.096,
            "region": "world",
            "usd_per_kwh": 0.16,
            "g_co2_per_kwh": 480,
        },
        method=("warm-up excluded; median of 3 rounds",),
        **{"statement": statement, "max_quality_drop": BOUND, **extra},  # type: ignore[arg-type]
    )


def test_pareto_front_is_the_search_s() -> None:
    flags = front_flags([(c, q) for _k, _n, q, c, _t in CANDIDATES])
    assert {k for (k, *_), f in zip(CANDIDATES, flags, strict=True) if f} == FRONT
    # lower is better (perplexity): the cheapest lowest value wins
    assert front_flags([(1.0, 10.0), (2.0, 5.0), (3.0, 6.0)], higher_is_better=False) == [
        True,
        True,
        False,
    ]
    # a quality 1e-7 points higher is float noise, not a reason to pay twice as much: the
    # search (search/pareto.py) calls it a tie, and the report draws the same front
    assert front_flags([(1.0, 80.0), (2.0, 80.0000001)]) == [True, False]


def test_the_report_reads_a_pipeline_from_its_text_as_the_search_does() -> None:
    """A report point carries its pipeline as text (``onnx_export(opset=17) + ...``); the
    record it hands to the search's tie rule names its passes, so the rule is the search's:
    a batch size is not complexity, another pass is (the demo's report.html once failed on a
    tie here, the rule reading text items as records)."""
    from frugalml.report.figures import record_of
    from frugalml.search.pareto import complexity, pareto_front, pick

    stem = "layer_drop(keep=4) + onnx_export(opset=17) + openvino_int8(precision=f32)"
    b32 = Point("c19", 87.03, 0.0150, passes=stem, cost_ci=(0.0130, 0.0170))
    b128 = Point("c31", 87.03, 0.0135, passes=f"{stem} + runtime_settings(batch_size=128)")
    four = Point("c32", 87.03, 0.0135, passes=f"{stem} + prune_structured(amount=0.25)")
    recs = {p.name: {**record_of(p), "id": p.name} for p in (b32, b128, four)}
    assert [complexity(r) for r in recs.values()] == [3, 3, 4]
    assert pick([recs["c19"], recs["c31"]])["id"] == "c31"
    assert pick([recs["c19"], recs["c32"]])["id"] == "c19"
    assert {r["id"] for r in pareto_front(list(recs.values()))} == {"c19", "c31"}


def test_report_is_self_contained_and_escaped() -> None:
    text = render(_data())
    assert "<script src" not in text and "<link" not in text and "@import" not in text
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", text)
    assert "url(http" not in text
    assert "broken &lt;script&gt;" in text and "broken <script>" not in text
    assert text.count('class="point') == len(CANDIDATES)
    assert "estimate" in text and "Estimate, not reading" in text
    evil = _data(stop_reason='budget"><img src=x onerror=alert(1)>')
    page = render(evil)
    assert "<img src=x" not in page and "&lt;img src=x" in page  # escaped by the template
    chart = render(dataclasses.replace(_data(), metric="rho<i>"))  # the chart's template too
    assert "rho&lt;i&gt; (higher is better)" in chart and "rho<i>" not in chart


def test_the_top_says_how_much_cheaper_at_what_loss_with_what_uncertainty() -> None:
    text = render(_data())
    top = text[text.index('id="verdict"') : text.index('id="statement"')]
    # c01: $0.30 against $0.90 per 1M requests, 81.6 against 82.0 points
    assert "0.33× the cost, 67% less" in top
    assert "−0.40" in top and "quality lost" in top
    assert "95% CI −0.55 to −0.25" in top  # the quality interval, with the point estimate
    assert "bound −1.00" in top
    assert "$0.300 vs $0.900 per 1M requests" in top


def test_the_verdict_says_why_the_search_stopped() -> None:
    assert 'id="stopped"' not in render(_data())
    text = render(_data(stop_reason="budget", untried=8))
    stopped = text[text.index('id="stopped"') :]
    assert (
        "time budget ran out before every candidate was tried; 8 candidates not tried"
        in (stopped[:300])
    )
    assert 'id="stopped"' not in render(_data(stop_reason="completed", untried=0))
    none = render(_data(chosen="none"))
    assert "No candidate is cheaper than the original within the quality bound" in none


def test_chart_draws_the_bound_and_the_noise_band() -> None:
    text = render(_data(quality_tolerance=0.1))
    assert text.count('class="quality-bound"') == 1 and "quality bound" in text
    assert text.count('class="noise-band"') == 1 and "noise band (ties)" in text
    assert "Quality differences within 0.10 points" in text
    assert "Quality differences within 0.05 points" in render(_data())  # the search's own
    assert 'class="quality-bound"' not in render(_data(max_quality_drop=None))
    far = render(_data(max_quality_drop=50.0))  # 32 points: far below every candidate
    assert 'class="quality-bound"' not in far and "(32.00, off the chart)" in far


def _screens() -> Path | None:
    """Where to keep the screenshots for a person to look at (FRUGAL_SCREENSHOTS), if set."""
    folder = os.environ.get("FRUGAL_SCREENSHOTS")
    return Path(folder) if folder else None


@pytest.mark.browser
@pytest.mark.parametrize("width", [1400, 800])
def test_report_renders_in_chromium_without_horizontal_scroll(
    chromium, tmp_path: Path, width: int
) -> None:
    out = write(_data(stop_reason="budget", untried=3), tmp_path / "report.html")
    facts = chromium.probe(out, width=width)
    assert facts["viewport"] == width
    # nothing hides behind a horizontal scroll: not the page, not a section, not the table
    assert facts["page"]["scroll"] <= facts["page"]["client"], facts["page"]
    for b in facts["boxes"]:
        assert b["scroll"] <= b["client"] + 1, b
    table, section = facts["table"], facts["table_section"]
    assert table["x"] + table["w"] <= section["x"] + section["w"]
    svg = facts["svg"]
    assert svg["w"] > 400 * width / 1400 and svg["h"] > 150
    points = facts["points"]
    assert len(points) == len(CANDIDATES)
    assert sorted(p["kind"] for p in points).count("baseline") == 1
    assert [p["name"] for p in points if p["kind"] == "chosen"] == ["c01"]
    for p in points:  # every marker is drawn, with a size, inside the chart
        b = p["box"]
        assert b["w"] > 2 and b["h"] > 2
        assert svg["x"] <= b["x"] and b["x"] + b["w"] <= svg["x"] + svg["w"]
        assert svg["y"] <= b["y"] and b["y"] + b["h"] <= svg["y"] + svg["h"]
    # the bound (81 points) lies below the baseline and the chosen, above c02 (79) and c06 (75)
    mid = {p["name"]: p["box"]["y"] + p["box"]["h"] / 2 for p in points}
    bound_y = facts["bound"]["y"]
    assert mid["c00"] < bound_y and mid["c01"] < bound_y
    assert mid["c02"] > bound_y and mid["c06"] > bound_y
    band = facts["band"]  # the noise band covers the chosen point's quality interval
    assert band["y"] <= mid["c01"] <= band["y"] + band["h"]
    assert facts["front"] == 1
    assert len(facts["rows"]) == len(CANDIDATES) + 1  # the failed candidate is listed too
    assert all(r["h"] > 10 for r in facts["rows"])
    assert sum("chosen" in r["cls"] for r in facts["rows"]) == 1
    # the cost breakdown: every label whole (none clipped), no two alike, the chosen marked
    labels = facts["bar_labels"]
    assert len(labels) == len(CANDIDATES)
    assert len({lab["text"] for lab in labels}) == len(labels)
    for lab in labels:
        assert lab["scroll"] <= lab["client"] + 1, lab
        assert lab["box"]["x"] >= facts["section_box"]["x"], lab
    chosen = [lab for lab in labels if "chosen" in lab["cls"]]
    assert len(chosen) == 1 and "★ chosen" in chosen[0]["text"]
    assert facts["bars"] == 2 * len(CANDIDATES)  # instance time + electricity each
    assert "0.33× the cost, 67% less" in facts["verdict"]
    assert any("quality lost" in c and "−0.40" in c for c in facts["cards"])
    assert facts["scripts_with_src"] == 0 and facts["links"] == 0
    png = chromium.screenshot(out, tmp_path / f"report-{width}.png", size=(width, 3400))
    w, h, distinct = chromium.png_facts(png)
    assert (w, h) == (width, 3400)
    assert png.stat().st_size > 20_000 and distinct > 50  # a drawn page, not a blank one
    if (keep := _screens()) is not None:
        keep.mkdir(parents=True, exist_ok=True)
        shutil.copy(png, keep / png.name)


@pytest.mark.browser
def test_front_given_by_the_search_is_used(chromium, tmp_path: Path) -> None:
    data = _data(chosen="c03", on_pareto_given=True)
    facts = chromium.probe(write(data, tmp_path / "r.html"))
    assert [p["name"] for p in facts["points"] if p["kind"] == "chosen"] == ["c03"]
    front_rows = render(data).count('data-sort="1">yes')
    assert front_rows == len(FRONT)
