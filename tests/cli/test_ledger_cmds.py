"""The command line for measurement and the ledger, run as a real subprocess."""

from __future__ import annotations

import json
import sys

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


TREE = """
import subprocess, sys, time
child = subprocess.Popen(["sleep", "120"])  # a grandchild of frugal
print(child.pid, flush=True)
child.wait()
"""


CMD = [sys.executable, "-c", TREE]


@pytest.mark.parametrize("signame", ["SIGHUP", "SIGTERM", "SIGINT"])
def test_signal_to_measure_reaches_the_whole_command(cli, signame: str) -> None:  # type: ignore[no-untyped-def]
    import os
    import signal
    import subprocess
    import sys
    import time

    import psutil

    signum = int(getattr(signal, signame))

    def default_signals() -> None:
        # a suite started under nohup, or with & from a script, ignores SIGHUP / SIGINT, and
        # an ignored signal stays ignored in the children (frugal keeps it so): the test is
        # about a terminal's signals, so the command starts with the default dispositions
        for s in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM):
            signal.signal(s, signal.SIG_DFL)

    proc = subprocess.Popen(
        [sys.executable, "-m", "frugalml", "measure", "--name", "tree", "--json", "--", *CMD],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_signals,
    )
    assert proc.stdout is not None
    grandchild = int(proc.stdout.readline())
    os.kill(proc.pid, signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, err
    assert "frugalml" not in err  # no traceback from frugal (the child may print its own)
    deadline = time.monotonic() + 10  # the grandchild got the signal too: nothing orphaned
    while psutil.pid_exists(grandchild) and time.monotonic() < deadline:
        if psutil.Process(grandchild).status() == psutil.STATUS_ZOMBIE:
            break
        time.sleep(0.05)
    assert not psutil.pid_exists(grandchild) or (
        psutil.Process(grandchild).status() == psutil.STATUS_ZOMBIE
    )
    record = json.loads(out)
    assert record["status"] == "failed" and signame in record["error"]
    runs = json.loads(cli("runs", "--json").stdout)
    assert [(r["name"], r["status"]) for r in runs] == [("tree", "failed")]


def test_json_out_keeps_stdout_for_the_command(cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "run.json"
    out = cli("measure", "--json-out", str(target), "--", "python", "-c", "print('hello')")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "hello\n"  # the command's output and nothing else
    record = json.loads(target.read_text())
    assert record["status"] == "finished" and record["wall_s"] > 0
    assert json.loads(cli("runs", "--json").stdout)[0]["id"] == record["id"]
    again = cli("measure", "--json-out", str(target), "--", "python", "-c", "pass")
    assert again.returncode == 0, again.stderr  # its own earlier file may be replaced
    assert json.loads(target.read_text())["id"] != record["id"]


def test_json_out_never_overwrites_someone_elses_file(cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    precious = tmp_path / "notes.txt"
    precious.write_text("mine")
    out = cli("measure", "--json-out", str(precious), "--", "python", "-c", "pass")
    assert out.returncode == 2 and "frugal did not write it" in out.stderr
    assert precious.read_text() == "mine"
    assert json.loads(cli("runs", "--json").stdout) == []  # refused before anything ran
    book = str(tmp_path / "l.db")
    onto_ledger = cli("measure", "--json-out", book, "--ledger", book, "--", "true")
    assert onto_ledger.returncode == 2 and "the ledger" in onto_ledger.stderr


def test_runs_table_fits_80_columns(cli) -> None:  # type: ignore[no-untyped-def]
    cli("measure", "--name", "first-run", "--", "python", "-c", "pass")
    cli("measure", "--name", "second-run", "--", "python", "-c", "pass")
    run_ids = [r["id"][:12] for r in json.loads(cli("runs", "--json").stdout)]
    out = cli("runs", env={"COLUMNS": "80"})
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    for run_id, name in zip(run_ids, ("second-run", "first-run"), strict=True):
        row = next(line for line in lines if run_id in line)  # the id is whole
        assert name in row and "finished" in row  # so are the name and the status
    wide = cli("runs", env={"COLUMNS": "200"})
    assert "energy" in wide.stdout and "started" in wide.stdout  # more room, more columns


OPTIMIZE = ("--task", "fidelity", "--data")


def test_sigterm_to_optimize_ends_its_runs_failed_naming_the_signal(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """An in-process command (optimize): SIGTERM ends every open run as failed, exit 143."""
    import os
    import signal
    import subprocess
    import time

    from frugalml.data import stdlib_sentences
    from frugalml.ledger import Ledger
    from tinymodels import tiny_bert, write_jsonl

    model = tiny_bert(tmp_path / "m")
    data = write_jsonl(tmp_path / "t.jsonl", [{"text": t} for t in stdlib_sentences(48, seed=4)])
    args = [str(model), *OPTIMIZE, str(data), "--out", str(tmp_path / "out"), "--repeats", "3"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "frugalml", "optimize", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    with Ledger() as book:  # the test's own data folder, inherited by the command
        while not book.runs(kind="optimize", status="running"):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr
            time.sleep(0.05)
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "terminated by SIGTERM" in err and "Traceback" not in err
    with Ledger() as book:
        runs = book.runs()
        (top,) = book.runs(kind="optimize")
    assert top.status == "failed" and "SIGTERM" in (top.error or "")
    assert {r.status for r in runs} <= {"finished", "failed"}  # none left running or crashed
