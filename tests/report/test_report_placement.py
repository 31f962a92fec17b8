"""``frugal report --place-to``: the chosen candidate's placement statement in the HTML
report, each side labelled measured or predicted, with the catalog's age; checked against
hand-computed costs for a small catalog (a real config file) and laid out by Chromium.

The chosen candidate was measured on 2 cores of ``test-cpu`` (0.1 TFLOP/s fp32 per core):
a 40 MB fp32 model (10 M parameters) at 50 tokens per request is 1 GFLOP per request; batch
10 at 100 requests/s is 0.1 s per batch, 0.01 s of it the stated overhead, so the roofline
part is 10 x 1e9 / 2e11 = 0.05 s (compute-bound) run at an efficiency of 0.05 / 0.09.
``t/gpu`` (2 x ``test-gpu``, 10 TFLOP/s each, 2.00 $/h): 0.01 + 10 x 1e9 / 1e13 x 0.09 / 0.05
= 0.0118 s per batch per GPU, 2 x 10 / 0.0118 = 1694.9 requests/s; $ per 1M requests
2.00 / (1694.9 x 3600) x 1e6 = $0.3278, against the measured 0.20 / (100 x 3600) x 1e6 =
$0.5556: 41% less. p99 150 ms measured, 150 x 0.0118 / 0.1 = 17.7 ms predicted.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from frugalml.ledger import Ledger
from frugalml.records import Hardware
from testcatalog import TEST_CHIPS

CONFIG = (
    TEST_CHIPS
    + """
[instances."t/gpu"]
chip = "test-gpu"
gpus = 2
vcpus = 8
usd_per_hour = 2.0
checked = "2026-09"
"""
)

GPU_USD_1M = 2.0 / (2 * 10 / 0.0118 * 3600) * 1e6
MEASURED_USD_1M = 0.2 / (100 * 3600) * 1e6


@pytest.fixture
def search(_isolated_home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict:
    cfg = _isolated_home / "config.toml"
    cfg.write_text(CONFIG)
    monkeypatch.setenv("FRUGAL_CONFIG", str(cfg))
    hw = Hardware(
        cpu_model="TestCPU 9000 @ 3 GHz", cpu_logical_cores=2, cpu_physical_cores=2,
        memory_bytes=8 * 2**30, hostname="elsewhere",
    )  # fmt: skip
    ev = {
        "task": "similarity", "metric": "spearman", "higher_is_better": True,
        "throughput_per_s": 100.0, "latency_ms_p99": 150.0, "batch_size": 10, "threads": 2,
        "device": "cpu", "size_bytes": 40_000_000, "tokens_per_request": 50,
        "usd_per_hour": 0.2, "cost_usd_per_1m": MEASURED_USD_1M, "instance": "auto",
        "model": "c01 (onnx, float32, cpu)",
    }  # fmt: skip
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    with Ledger(ledger) as book:
        run = book.record(
            "c01 onnx", kind="candidate", status="finished", hardware=hw,
            params={"passes": ["onnx_export"], "eval": {**ev, "quality": 81.8}},
        )  # fmt: skip
    folder = tmp_path / "search"
    folder.mkdir()
    base = {**ev, "quality": 82.0, "throughput_per_s": 50.0, "cost_usd_per_1m": 1.1}
    entries = [
        {"id": "c00", "label": "original", "status": "ok", "baseline": True, "eval": base},
        {"id": "c01", "label": "onnx", "status": "ok", "chosen": True, "run_id": run,
         "passes": ["onnx_export"], "eval": {**ev, "quality": 81.8}},
    ]  # fmt: skip
    (folder / "candidates.json").write_text(json.dumps(entries))
    return {"ledger": ledger, "folder": str(folder), "run": run}


def _report(cli: Callable[..., Any], search: dict, out: Path, *args: str) -> str:
    proc = cli("report", search["folder"], "--out", str(out), "--ledger", search["ledger"], *args)
    assert proc.returncode == 0, proc.stderr
    return out.read_text(encoding="utf-8")


def test_report_states_the_chosen_candidate_s_placement(
    cli: Callable[..., Any], search: dict, tmp_path: Path
) -> None:
    page = _report(cli, search, tmp_path / "r.html", "--place-to", "t/gpu", "--slo-p99-ms", "200")
    section = html.unescape(page[page.index('id="placement"') : page.index('id="notes"')])
    assert (
        f"moving this workload from auto (this run's hardware) (measured, "
        f"${MEASURED_USD_1M:.4g} per 1M requests) to t/gpu (predicted, ${GPU_USD_1M:.4g}) cuts "
        "$ per 1M requests by 41% at the same SLO (p99 ≤ 200 ms) (prices checked 2026-09 ("
    ) in section
    assert section.count('class="placement-row"') == 2
    assert ">measured<" in section and ">predicted<" in section
    assert "17.7 ms" in section and "150 ms" in section  # p99 predicted / measured
    assert "$0.328" in section and "$0.556" in section
    # the notes name the age of the prices behind the report's dollars: "auto" (the shipped
    # catalog's per-vCPU rate) in region "world", both 2025-06
    notes = html.unescape(page[page.index('id="notes"') :])
    assert "The catalog's prices checked 2025-06 (" in notes
    # no placement asked for: no section
    plain = _report(cli, search, tmp_path / "plain.html")
    assert 'id="placement"' not in plain


@pytest.mark.parametrize(
    "args, message",
    [
        (["--place-to", "nope/x"], "unknown instance 'nope/x'"),
        (["--slo-p99-ms", "100"], "go with --place-to"),
    ],
)
def test_bad_placement_options_are_one_line_and_exit_2(
    cli: Callable[..., Any], search: dict, tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "r.html"
    proc = cli("report", search["folder"], "--out", str(out), "--ledger", search["ledger"], *args)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()


PROBE = """
<script>
(function(){
  var s = document.getElementById('placement'), doc = document.documentElement;
  var t = s.querySelector('table');
  var out = {page: [doc.scrollWidth, doc.clientWidth], section: [s.scrollWidth, s.clientWidth],
             table: [t.getBoundingClientRect().right, s.getBoundingClientRect().right],
             text: s.innerText};
  var pre = document.createElement('pre'); pre.id = 'probe';
  pre.textContent = JSON.stringify(out); document.body.appendChild(pre);
})();
</script>
"""


@pytest.mark.browser
def test_placement_section_fits_at_800_px(
    chromium: Any, cli: Callable[..., Any], search: dict, tmp_path: Path
) -> None:
    page = _report(cli, search, tmp_path / "r.html", "--place-to", "t/gpu")
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    done = chromium._run(
        "--virtual-time-budget=3000", "--window-size=800,2000", "--dump-dom",
        probed.resolve().as_uri(),
    )  # fmt: skip
    start = done.stdout.index('<pre id="probe">') + len('<pre id="probe">')
    facts = json.loads(html.unescape(done.stdout[start : done.stdout.index("</pre>", start)]))
    assert facts["page"][0] <= facts["page"][1], facts
    assert facts["section"][0] <= facts["section"][1] + 1, facts
    assert facts["table"][0] <= facts["table"][1] + 1, facts
    assert "with no SLO given" in facts["text"] and "prices checked 2026-09" in facts["text"]
