"""The command line for measurement and the ledger, run as a real subprocess."""

from __future__ import annotations

import json

import pytest

from frugalml import __version__


def test_measure_records_a_priced_run(cli) -> None:  # type: ignore[no-untyped-def]
    out = cli("measure", "--", "python", "-c", "sum(range(10**7))")
    assert out.returncode == 0, out.stderr
    assert "cost" in out.stderr and "energy" in out.stderr and "estimate" in out.stderr
    runs = json.loads(cli("runs", "--json").stdout)
    assert len(runs) == 1
    run = runs[0]
    assert run["status"] == "finished" and run["kind"] == "command"
    assert run["wall_s"] > 0 and run["cost_usd"] > 0 and run["cpu_s"] > 0
    assert run["energy_source"] == "estimate" and run["usage"]["energy_parts"]
    assert run["params"]["argv"] == ["python", "-c", "sum(range(10**7))"]


def test_measure_passes_exit_code_and_records_failure(cli) -> None:  # type: ignore[no-untyped-def]
    out = cli(
        "measure", "--name", "fails", "--json", "--", "python", "-c", "import sys; sys.exit(5)"
    )
    assert out.returncode == 5
    record = json.loads(out.stdout)
    assert record["status"] == "failed" and record["error"] == "exit code 5"
    assert record["name"] == "fails" and record["wall_s"] > 0


def test_measure_options_reach_the_price(cli) -> None:  # type: ignore[no-untyped-def]
    out = cli(
        "measure",
        "--instance",
        "aws/c7i.large:spot",
        "--region",
        "de",
        "--json",
        "--",
        "python",
        "-c",
        "pass",
    )
    record = json.loads(out.stdout)
    assert record["instance"] == "aws/c7i.large:spot" and record["region"] == "de"
    assert record["usage"]["usd_per_hour"] == 0.035


@pytest.mark.parametrize(
    "args, message",
    [
        (["measure", "--instance", "aws/nope", "--", "true"], "unknown instance type"),
        (["measure", "--region", "atlantis", "--", "true"], "unknown region"),
        (["measure", "--", "no-such-command-xyz"], "command not found"),
        (["show", "ffffffffffff"], "no run"),
        (["runs", "--status", "sleeping"], "unknown status"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(cli, args: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    out = cli(*args)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert message in out.stderr
    assert out.stderr.strip().startswith("frugal: error:")


def test_failed_command_start_keeps_a_failed_run(cli) -> None:  # type: ignore[no-untyped-def]
    cli("measure", "--", "no-such-command-xyz")
    runs = json.loads(cli("runs", "--json").stdout)
    assert [r["status"] for r in runs] == ["failed"]
    assert "command not found" in runs[0]["error"]


def test_show_and_runs_tables(cli) -> None:  # type: ignore[no-untyped-def]
    cli("measure", "--name", "first", "--", "python", "-c", "pass")
    cli("measure", "--name", "second", "--", "python", "-c", "pass")
    table = cli("runs", "--limit", "1")
    assert table.returncode == 0 and "second" in table.stdout and "first" not in table.stdout
    run_id = json.loads(cli("runs", "--json").stdout)[1]["id"]
    shown = cli("show", run_id[:6])
    assert shown.returncode == 0 and "first" in shown.stdout and "wall time" in shown.stdout
    assert json.loads(cli("show", run_id, "--json").stdout)["id"] == run_id


def test_empty_ledger_says_so(cli) -> None:  # type: ignore[no-untyped-def]
    out = cli("runs")
    assert out.returncode == 0 and "No runs" in out.stdout
    assert json.loads(cli("runs", "--json").stdout) == []


def test_prices_lists_catalog(cli) -> None:  # type: ignore[no-untyped-def]
    data = json.loads(cli("prices", "--json").stdout)
    assert "aws/g5.xlarge" in data["instances"] and "world" in data["regions"]
    text = cli("prices").stdout
    assert "aws/p5.48xlarge" in text and "gCO2/kWh" in text
    one = json.loads(cli("prices", "--instance", "gcp/g2-standard-4", "--json").stdout)
    assert one["usd_per_hour"] == 0.70683 and one["region"] == "us-central1"


def test_version_and_help_everywhere(cli) -> None:  # type: ignore[no-untyped-def]
    assert cli("--version").stdout.strip() == f"frugal {__version__}"
    top = cli("--help")
    assert top.returncode == 0
    commands = ["measure", "runs", "show", "prices"]
    for name in commands:
        assert name in top.stdout
        out = cli(name, "--help")
        assert out.returncode == 0 and "Usage" in out.stdout and len(out.stdout) > 300, name
