"""``frugal compare``, ``gate`` and ``report`` read loadtest runs: $ per 1k requests at the SLO.

Two real ``frugal serve`` processes of the bundled MiniLM (dynamic batching, and batch size 1)
write to one real SQLite ledger; ``frugal loadtest`` loads each with an SLO sweep; the
comparison is built from the ledger alone.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from serving import Server, start_server

from frugalml.ledger import Ledger

SENTENCES = [
    "A man is playing a guitar.",
    "The quick brown fox jumps over the lazy dog near the river bank at dawn.",
    "Cheap models are only cheap in production.",
    "Stocks fell sharply on Tuesday.",
    "A woman is slicing an onion in the kitchen.",
    "Two dogs run across a snowy field.",
]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "frugalml", *args], capture_output=True, text=True, timeout=600
    )


@dataclass
class Served:
    ledger: str
    batching: Server
    batch1: Server
    runs: dict[str, dict[str, Any]]  # name -> the loadtest's --json output


def _loadtest(url: str, data: Path, ledger: str, *extra: str) -> dict[str, Any]:
    r = _cli(
        "loadtest", url, "--data", str(data), "--duration", "1.5", "--ledger", ledger,
        "--json", *extra,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    out: dict[str, Any] = json.loads(r.stdout)
    return out


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("served")
    ledger = f"sqlite:///{tmp / 'ledger.db'}"
    data = tmp / "texts.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in SENTENCES))
    batching = start_server(tmp, "--max-wait-ms", "20", ledger_url=ledger)
    batch1 = start_server(
        tmp, "--max-batch-tokens", "1", "--max-wait-ms", "0", "--max-concurrency", "64",
        ledger_url=ledger,
    )  # fmt: skip
    try:
        slo = ("--sweep", "2,4", "--slo-p99-ms", "600000")
        runs = {
            "batching": _loadtest(batching.url, data, ledger, *slo),
            "batch1": _loadtest(batch1.url, data, ledger, *slo),
            "one_rate": _loadtest(batch1.url, data, ledger, "--rate", "3"),
            "missed": _loadtest(batch1.url, data, ledger, "--sweep", "2,3", "--slo-p99-ms", "1e-3"),
        }  # fmt: skip
        yield Served(ledger, batching, batch1, runs)
    finally:
        for srv in (batching, batch1):
            if srv.proc.poll() is None:
                srv.stop()


def _compare(served: Served, a: str, b: str) -> dict[str, Any]:
    r = _cli("compare", served.runs[a]["run_id"], served.runs[b]["run_id"], "--ledger",
             served.ledger, "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    out: dict[str, Any] = json.loads(r.stdout)
    return out


def test_compare_of_two_loadtest_runs_states_cost_at_the_slo(served: Served) -> None:
    base, cand = served.runs["batching"], served.runs["batch1"]
    st = _compare(served, "batching", "batch1")
    assert st["kind"] == "loadtest" and st["slo_p99_ms"] == 600000
    for side, run in ((st["baseline"], base), (st["candidate"], cand)):
        # the highest rate of the sweep meeting the SLO, with the loadtest's own figures there
        assert side["basis"] == "slo" and side["rate_rps"] == run["best_rate_rps"] == 4.0
        at = next(r for r in run["rates"] if r["rate_rps"] == 4.0)
        assert side["usd_per_1k_requests"] == run["usd_per_1k_requests_at_slo"] > 0
        assert side["throughput_rps"] == at["throughput_rps"]
        assert side["goodput_rps"] == at["goodput_rps"]
        assert side["p99_ms"] == at["latency_ms"]["p99_ms"]
        assert side["rates_tried"] == [2.0, 4.0]
        assert side["server_run_id"] == run["server_run_id"]
    want = cand["usd_per_1k_requests_at_slo"] / base["usd_per_1k_requests_at_slo"]
    assert st["ratios"]["cost"] == pytest.approx(want, rel=1e-12)
    # each side's server settings come from its serve run in the ledger
    assert st["baseline"]["server"]["max_wait_ms"] == 20.0
    assert st["candidate"]["server"]["max_batch_tokens"] == 1
    assert st["candidate"]["server"]["max_concurrency"] == 64
    assert "--max-batch-tokens 1 " in st["candidate"]["settings"]
    assert "--max-wait-ms 20" in st["baseline"]["settings"]
    assert st["candidate"]["server_usd_per_1k_active"] is not None
    assert "per 1k requests" in st["paragraph"] and "p99 <= 600000 ms" in st["paragraph"]


def test_compare_prints_the_served_statement(served: Served) -> None:
    r = _cli("compare", served.runs["batching"]["run_id"], served.runs["batch1"]["run_id"],
             "--ledger", served.ledger)  # fmt: skip
    assert r.returncode == 0, r.stderr
    text = " ".join(r.stdout.split())
    for figure in ("$ per 1k requests at the SLO", "goodput", "latency p99", "served by"):
        assert figure in text
    assert "frugal serve minilm --max-batch-tokens 1" in text
    assert "not quality" in text  # a load test says what it does not measure


def test_one_measured_rate_and_a_missed_slo(served: Served) -> None:
    st = _compare(served, "batching", "one_rate")
    # one rate, no SLO on the candidate: its measured rate, but the SLOs differ -> no ratio
    assert st["candidate"]["basis"] == "rate" and st["candidate"]["rate_rps"] == 3.0
    assert st["ratios"]["cost"] is None and "different SLOs" in st["why_no_ratio"]["cost"]
    missed = _compare(served, "batch1", "missed")
    assert missed["candidate"]["basis"] == "missed"
    assert missed["candidate"]["usd_per_1k_requests"] is None
    assert missed["ratios"]["cost"] is None
    assert "no offered rate (2, 3 req/s) met" in missed["why_no_ratio"]["cost"]


def test_gate_judges_cost_per_1k_requests_at_the_slo(served: Served) -> None:
    a, b = served.runs["batching"]["run_id"], served.runs["batch1"]["run_id"]
    ratio = (
        served.runs["batch1"]["usd_per_1k_requests_at_slo"]
        / served.runs["batching"]["usd_per_1k_requests_at_slo"]
    )
    common = ("--ledger", served.ledger)
    ok = _cli("gate", a, b, "--max-cost-ratio", f"{ratio * 1.01:.6f}", *common, "--json")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    verdict = json.loads(ok.stdout)
    assert verdict["passed"] is True and [c["name"] for c in verdict["conditions"]] == [
        "cost ratio"
    ]
    assert verdict["conditions"][0]["value"] == pytest.approx(ratio, rel=1e-12)
    bad = _cli("gate", a, b, "--max-cost-ratio", f"{ratio * 0.99:.6f}", *common)
    assert bad.returncode == 1
    assert re.search(r"FAIL\s+cost ratio [0-9.]+ > ", bad.stdout)
    assert "$ per 1k requests at the SLO" in " ".join(bad.stdout.split())
    strict = _cli("gate", a, b, "--max-cost-ratio", "100", "--strict", *common)
    assert strict.returncode == 1 and "no confidence interval" in " ".join(strict.stdout.split())
    missed = _cli("gate", b, served.runs["missed"]["run_id"], "--max-cost-ratio", "100", *common)
    assert missed.returncode == 1 and "unknown" in missed.stdout
    energy = _cli("gate", a, b, "--max-cost-ratio", "1", "--cost-metric", "energy", *common)
    assert energy.returncode == 2 and "not recorded by load tests" in energy.stderr
    assert "Traceback" not in energy.stderr


def test_a_loadtest_run_and_a_run_of_another_kind_do_not_compare(served: Served) -> None:
    r = _cli("compare", served.runs["batching"]["run_id"], served.batching.run_id,
             "--ledger", served.ledger)  # fmt: skip
    assert r.returncode == 2 and "is a loadtest run and" in r.stderr
    assert "Traceback" not in r.stderr


class _Rates(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.in_rates, self.rows, self.ids = False, 0, set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        d = dict(attrs)
        if d.get("id"):
            self.ids.add(d["id"])
        if tag == "table" and d.get("id") == "rates":
            self.in_rates = True
        elif tag == "tr" and self.in_rates:
            self.rows += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.in_rates = False


def test_report_writes_a_loadtest_page(served: Served, tmp_path: Path) -> None:
    run = served.runs["batch1"]
    out = tmp_path / "served.html"
    r = _cli("report", run["run_id"], "--out", str(out), "--ledger", served.ledger, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["kind"] == "loadtest"
    page = out.read_text(encoding="utf-8")
    parser = _Rates()
    parser.feed(page)
    assert parser.rows == 1 + len(run["rates"])  # a header and one row per offered rate
    assert {"headline", "settings", "rates"} <= parser.ids
    assert "--max-batch-tokens 1" in page and "SLO p99 &lt;= 600000 ms" in page
    assert '<path class="series p99"' in page and "http://" not in page.split("</style>")[0]
    # the page is frugal's now: writing it again needs no --overwrite; a foreign file is kept
    foreign = tmp_path / "mine.html"
    foreign.write_text("not frugal's")
    r = _cli("report", run["run_id"], "--out", str(foreign), "--ledger", served.ledger)
    assert r.returncode == 2 and foreign.read_text() == "not frugal's"


def test_the_ledger_holds_both_servers_and_loadtests(served: Served) -> None:
    with Ledger(served.ledger) as book:
        for name in ("batching", "batch1"):
            run = book.get(served.runs[name]["run_id"])
            assert run.kind == "loadtest" and run.parent_id == served.runs[name]["server_run_id"]


def test_evaluations_still_need_a_quality_limit(tmp_path: Path) -> None:
    from frugalml.errors import BadInput
    from frugalml.report.gate import gate
    from frugalml.report.statement import Side, build_statement

    base = Side("a", "run a", "similarity", "spearman", True, 80.0, cost_usd_per_1m=2.0)
    cand = Side("b", "run b", "similarity", "spearman", True, 79.0, cost_usd_per_1m=1.0)
    st = build_statement(base, cand)
    with pytest.raises(BadInput, match="--max-quality-drop"):
        gate(st, max_cost_ratio=1.0, max_quality_drop=None)
    assert gate(st, max_cost_ratio=1.0, max_quality_drop=2.0).passed
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "a", "label": 1}\n')
    r = _cli("gate", "minilm", "minilm", "--max-cost-ratio", "1", "--task", "similarity",
             "--data", str(data))  # fmt: skip
    assert r.returncode == 2 and "--max-quality-drop" in r.stderr  # before any evaluation
    assert "Traceback" not in r.stderr
