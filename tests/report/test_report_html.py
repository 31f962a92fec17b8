"""The HTML report: self-contained, and rendered by a real headless Chromium."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from frugalml.report.html import Point, ReportData, pareto_front, render, write

# (name, quality, $ per 1M, throughput/s): a small search where the front is known
CANDIDATES = [
    ("baseline", 82.0, 0.90, 120.0),
    ("int8", 81.6, 0.30, 360.0),  # front
    ("int8+prune", 79.0, 0.12, 900.0),  # front
    ("fp16", 82.0, 0.85, 127.0),  # front (as good as baseline, cheaper)
    ("onnx", 81.0, 0.45, 240.0),  # dominated by int8
    ("distil", 80.5, 0.50, 216.0),  # dominated by int8
    ("tiny", 75.0, 0.10, 1080.0),  # front
]
FRONT = {"int8", "int8+prune", "fp16", "tiny"}


def _data(chosen: str = "int8", on_pareto_given: bool = False) -> ReportData:
    points = [
        Point(
            name,
            q,
            c,
            passes="" if name == "baseline" else f"pass:{name}",
            figures={
                "throughput_per_s": t,
                "latency_ms_p50": 1e3 / t * 8,
                "latency_ms_p99": 1.5e3 / t * 8,
                "energy_j_per_1k": 40 * c,
                "energy_source": "estimate",
                "peak_memory_bytes": 300e6,
                "size_bytes": 90e6 if name == "baseline" else 25e6,
            },
            on_pareto=(name in FRONT) if on_pareto_given else None,
            chosen=name == chosen,
            baseline=name == "baseline",
            run_id=f"{i:04d}abcd",
        )
        for i, (name, q, c, t) in enumerate(CANDIDATES)
    ]
    points.append(
        Point(
            "broken <script>",
            None,
            None,
            passes="prune(0.9)",
            status="failed",
            error="CandidateFailed: NaN outputs",
        )
    )
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
        method=("warm-up excluded; median of 3 passes",),
    )


def test_pareto_front_is_computed() -> None:
    flags = pareto_front([(c, q) for _n, q, c, _t in CANDIDATES])
    assert {n for (n, *_), f in zip(CANDIDATES, flags, strict=True) if f} == FRONT
    # lower is better (perplexity): the cheapest lowest value wins
    assert pareto_front([(1.0, 10.0), (2.0, 5.0), (3.0, 6.0)], higher_is_better=False) == [
        True,
        True,
        False,
    ]


def test_report_is_self_contained_and_escaped() -> None:
    text = render(_data())
    assert "<script src" not in text and "<link" not in text and "@import" not in text
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", text)
    assert "url(http" not in text
    assert "broken &lt;script&gt;" in text and "broken <script>" not in text
    assert text.count('class="point') == len(CANDIDATES)
    assert "estimate" in text and "Estimate, not reading" in text


@pytest.mark.browser
def test_report_renders_in_chromium(chromium, tmp_path: Path) -> None:
    out = write(_data(), tmp_path / "report.html")
    facts = chromium.probe(out)
    svg = facts["svg"]
    assert svg["w"] > 400 and svg["h"] > 200
    points = facts["points"]
    assert len(points) == len(CANDIDATES)
    assert sorted(p["kind"] for p in points).count("baseline") == 1
    assert [p["name"] for p in points if p["kind"] == "chosen"] == ["int8"]
    for p in points:  # every marker is drawn, with a size, inside the chart
        b = p["box"]
        assert b["w"] > 3 and b["h"] > 3
        assert svg["x"] <= b["x"] and b["x"] + b["w"] <= svg["x"] + svg["w"]
        assert svg["y"] <= b["y"] and b["y"] + b["h"] <= svg["y"] + svg["h"]
    assert facts["front"] == 1
    assert len(facts["rows"]) == len(CANDIDATES) + 1  # the failed candidate is listed too
    assert all(r["h"] > 10 for r in facts["rows"])
    assert sum("chosen" in r["cls"] for r in facts["rows"]) == 1
    assert facts["bars"] == 2 * len(CANDIDATES)  # instance time + electricity each
    assert facts["scripts_with_src"] == 0 and facts["links"] == 0
    png = chromium.screenshot(out, tmp_path / "report.png")
    width, height, distinct = chromium.png_facts(png)
    assert (width, height) == (1280, 1800)
    assert png.stat().st_size > 20_000 and distinct > 50  # a drawn page, not a blank one


@pytest.mark.browser
def test_front_given_by_the_search_is_used(chromium, tmp_path: Path) -> None:
    data = _data(chosen="fp16", on_pareto_given=True)
    facts = chromium.probe(write(data, tmp_path / "r.html"))
    assert [p["name"] for p in facts["points"] if p["kind"] == "chosen"] == ["fp16"]
    front_rows = render(data).count('data-sort="1">yes')
    assert front_rows == len(FRONT)
