"""Spend over time in the HTML report: the ledger's runs by day, stacked by project and kind,
drawn as inline SVG (checked on the markup and laid out by a real headless Chromium).

The ledger (a real SQLite file) holds, within the last 30 days:

- 3 days ago: an untagged ``eval`` run that cost $0.30 and a ``command`` run that cost $0.10;
- 1 day ago: an untagged ``eval`` run that cost $0.20;
- today: a run of project ``ml`` (kind ``job``) that cost $0.60, started through the budget
  guard (so it is tagged), and a candidate of an optimize run (not top-level: not counted);
- 40 days ago: an ``eval`` run that cost $5.00 (outside the window).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from frugalml.ledger import Ledger
from frugalml.ledger.budgets import guard_for
from frugalml.records import Usage
from frugalml.report.html import Point, ReportData, render
from frugalml.report.spend import OTHER, build, chart, spend_over_time

NOW = datetime.now(UTC)


def _usage(cost: float) -> Usage:
    return Usage(
        wall_s=1.0, cpu_s=1.0, device_s=0.0, peak_host_bytes=1, peak_device_bytes=0,
        energy_j=1.0, energy_source="estimate", instance_cost_usd=cost, energy_cost_usd=0.0,
        cost_usd=cost, co2_g=0.0, instance="aws/c7i.large", region="us-east-1",
        usd_per_hour=0.08925, usd_per_kwh=0.1, g_co2_per_kwh=100.0,
    )  # fmt: skip


def _fill(book: Ledger) -> None:
    def past(kind: str, cost: float, days: int) -> str:
        return book.record(
            f"{kind} {days}d",
            kind=kind,
            status="finished",
            usage=_usage(cost),
            started_at=NOW - timedelta(days=days),
        )

    past("eval", 0.30, 3)
    past("command", 0.10, 3)
    past("eval", 0.20, 1)
    past("eval", 5.00, 40)
    run = book.start_run("train", kind="job", guard=guard_for(book, "ml", "ann"))
    book.finish_run(run, status="finished", usage=_usage(0.60))
    book.record("c01", kind="candidate", status="finished", usage=_usage(9.0), parent_id=run)


def _day(days_ago: int) -> str:
    return (NOW - timedelta(days=days_ago)).date().isoformat()


@pytest.fixture
def ledger(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with Ledger(url) as book:
        _fill(book)
    return url


def test_spend_over_time_buckets_by_day_project_and_kind(ledger: str) -> None:
    with Ledger(ledger) as book:
        spend = spend_over_time(book, days=30)
    assert spend is not None
    # every day of the window has a slot (30 days back to today: 31 calendar days)
    assert len(spend.periods) == 31 and spend.periods[-1] == _day(0)
    assert spend.cells[(_day(3), "eval")] == pytest.approx(0.30)
    assert spend.cells[(_day(3), "command")] == pytest.approx(0.10)
    assert spend.cells[(_day(1), "eval")] == pytest.approx(0.20)
    assert spend.cells[(_day(0), "ml · job")] == pytest.approx(0.60)
    assert spend.total == pytest.approx(1.20)  # not the $5 of 40 days ago, not the candidate
    assert spend.runs == 4
    assert spend.series == ("ml · job", "eval", "command")  # the largest first


def test_an_empty_ledger_has_no_spend(tmp_path: Path) -> None:
    with Ledger(f"sqlite:///{tmp_path / 'empty.db'}") as book:
        assert spend_over_time(book) is None
    assert build([], "day", NOW, NOW, days=30) is None


def test_small_series_fold_into_other() -> None:
    rows = [
        {"period": "2026-11-30", "project": "-", "kind": f"k{i}", "cost_usd": float(10 - i),
         "runs": 1, "user": "-", "instance": "-"}
        for i in range(9)
    ]  # fmt: skip
    spend = build(rows, "day", NOW - timedelta(days=2), NOW, days=2, top=6)
    assert spend is not None
    assert spend.series == ("k0", "k1", "k2", "k3", "k4", "k5", OTHER)
    assert spend.cells[("2026-11-30", OTHER)] == pytest.approx(4 + 3 + 2)  # k6, k7, k8


def _bars(svg: str) -> list[dict[str, str]]:
    return [
        dict(re.findall(r'(data-period|data-series|data-usd|height)="([^"]*)"', m))
        for m in re.findall(r"<rect class=\"spend-bar\"[^>]*>", svg)
    ]


def test_chart_markup_draws_one_bar_per_cell_to_scale(ledger: str) -> None:
    with Ledger(ledger) as book:
        spend = spend_over_time(book, days=30)
    assert spend is not None
    bars = _bars(chart(spend))
    assert len(bars) == 4
    height = {(b["data-period"], b["data-series"]): float(b["height"]) for b in bars}
    # $0.30 against $0.20 and $0.60: heights in the same proportions (one y scale)
    assert height[(_day(3), "eval")] / height[(_day(1), "eval")] == pytest.approx(1.5, rel=0.02)
    assert height[(_day(0), "ml · job")] / height[(_day(1), "eval")] == pytest.approx(3, rel=0.02)
    assert height[(_day(3), "command")] / height[(_day(1), "eval")] == pytest.approx(0.5, rel=0.02)


def _data(**extra: Any) -> ReportData:
    points = (
        Point("baseline", 82.0, 0.9, figures={"throughput_per_s": 120.0}, baseline=True),
        Point("c01 onnx", 81.5, 0.3, figures={"throughput_per_s": 360.0}, chosen=True),
    )
    return ReportData("frugal optimize: m", "similarity", "spearman", True, points, **extra)


def test_report_has_a_spend_section_only_when_the_ledger_has_runs(ledger: str) -> None:
    assert 'id="spend"' not in render(_data())
    with Ledger(ledger) as book:
        spend = spend_over_time(book)
    page = render(_data(spend=spend))
    section = page[page.index('id="spend"') : page.index('id="notes"')]
    assert "Spend over time" in section and "$1.20 over the last 30 days, 4 top-level runs" in (
        section
    )
    assert section.count('class="spend-bar"') == 4
    assert "ml · job: $0.600" in section  # the legend names each series with its total
    evil = build(
        [{"period": _day(0), "project": "<b>x</b>", "kind": "job", "cost_usd": 1.0, "runs": 1}],
        "day", NOW - timedelta(days=1), NOW, days=1,
    )  # fmt: skip
    page = render(_data(spend=evil))
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt; · job" in page


PROBE = """
<script>
(function(){
  function box(e){ var r = e.getBoundingClientRect();
    return {x: r.left, y: r.top, w: r.width, h: r.height}; }
  var svg = document.querySelector('svg.spend'), doc = document.documentElement;
  var out = {page: {scroll: doc.scrollWidth, client: doc.clientWidth},
    section: box(document.getElementById('spend')), svg: svg ? box(svg) : null,
    bars: Array.from(document.querySelectorAll('svg.spend .spend-bar')).map(function(b){
      return {series: b.dataset.series, period: b.dataset.period, box: box(b)}; }),
    legend: Array.from(document.querySelectorAll('svg.spend .legend text')).map(function(t){
      return box(t); })};
  var pre = document.createElement('pre'); pre.id = 'probe';
  pre.textContent = JSON.stringify(out); document.body.appendChild(pre);
})();
</script>
"""


@pytest.mark.browser
@pytest.mark.parametrize("width", [1400, 800])
def test_spend_chart_renders_in_chromium(
    chromium: Any, cli: Callable[..., Any], ledger: str, tmp_path: Path, width: int
) -> None:
    folder = tmp_path / "search"
    folder.mkdir()
    ev = {"task": "similarity", "metric": "spearman", "higher_is_better": True}
    base = {**ev, "quality": 82.0, "throughput_per_s": 100.0, "cost_usd_per_1m": 0.5}
    best = {**ev, "quality": 81.8, "throughput_per_s": 200.0, "cost_usd_per_1m": 0.25}
    entries = [
        {"id": "c00", "label": "original", "status": "ok", "baseline": True, "eval": base},
        {"id": "c01", "label": "onnx", "status": "ok", "chosen": True, "eval": best,
         "passes": ["onnx_export"]},
    ]  # fmt: skip
    (folder / "candidates.json").write_text(json.dumps(entries))
    out = tmp_path / "report.html"
    proc = cli("report", str(folder), "--out", str(out), "--ledger", ledger)
    assert proc.returncode == 0, proc.stderr
    probed = tmp_path / "probed.html"
    probed.write_text(out.read_text().replace("</body>", PROBE + "</body>"))
    done = chromium._run(
        "--virtual-time-budget=3000", f"--window-size={width},2400", "--dump-dom",
        probed.resolve().as_uri(),
    )  # fmt: skip
    start = done.stdout.index('<pre id="probe">') + len('<pre id="probe">')
    import html

    facts = json.loads(html.unescape(done.stdout[start : done.stdout.index("</pre>", start)]))
    assert facts["page"]["scroll"] <= facts["page"]["client"], facts["page"]
    svg, bars = facts["svg"], facts["bars"]
    assert svg is not None and svg["w"] > 300 * width / 1400 and svg["h"] > 80
    assert len(bars) == 4
    for b in bars + [{"box": t} for t in facts["legend"]]:  # drawn, inside the chart
        box = b["box"]
        assert box["w"] > 0.5 and box["h"] > 0.5
        assert svg["x"] - 0.5 <= box["x"] and box["x"] + box["w"] <= svg["x"] + svg["w"] + 0.5
        assert svg["y"] - 0.5 <= box["y"] and box["y"] + box["h"] <= svg["y"] + svg["h"] + 0.5
    by = {(b["period"], b["series"]): b["box"] for b in bars}
    # later days to the right; the $0.60 bar twice as tall as the $0.30 one
    assert by[(_day(3), "eval")]["x"] < by[(_day(1), "eval")]["x"] < by[(_day(0), "ml · job")]["x"]
    assert by[(_day(0), "ml · job")]["h"] / by[(_day(3), "eval")]["h"] == pytest.approx(2, rel=0.05)
    # the day's two runs are stacked: the command bar sits right on the eval bar
    low, high = by[(_day(3), "command")], by[(_day(3), "eval")]
    assert (
        abs(
            min(low["y"], high["y"])
            + (low["h"] + high["h"])
            - max(low["y"] + low["h"], high["y"] + high["h"])
        )
        < 1.0
    )
