"""``frugal runs --export mlflow``: a real ledger exported to a real local MLflow file store."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from frugalml.ledger import Ledger
from frugalml.records import Usage

pytest.importorskip("mlflow")


def _usage(wall_s: float) -> Usage:
    return Usage(
        wall_s=wall_s,
        cpu_s=wall_s * 1.5,
        device_s=0.0,
        peak_host_bytes=300_000_000,
        peak_device_bytes=0,
        energy_j=wall_s * 20,
        energy_source="estimate",
        instance_cost_usd=wall_s / 3600 * 0.1,
        energy_cost_usd=1e-6,
        cost_usd=wall_s / 3600 * 0.1,
        co2_g=0.01,
        instance="auto",
        region="world",
        usd_per_hour=0.1,
        usd_per_kwh=0.16,
        g_co2_per_kwh=480.0,
    )


def _client(uri: str):  # type: ignore[no-untyped-def]
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def test_export_runs_to_a_file_store(cli, sqlite_url: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    uri = (tmp_path / "mlruns").resolve().as_uri()
    with Ledger(sqlite_url) as book:
        parent = book.record(
            "optimize minilm",
            kind="optimize",
            status="finished",
            usage=_usage(120.0),
            params={"task": "similarity", "space": {"passes": ["int8"]}},
        )
        child = book.record(
            "int8",
            kind="candidate",
            status="finished",
            usage=_usage(30.0),
            parent_id=parent,
            quality={"spearman": 81.5},
            params={"eval": {"throughput_per_s": 512.5, "device": "cpu"}},
            artifacts={"model": "/tmp/x/best"},
        )
        failed = book.record(
            "prune",
            kind="candidate",
            status="failed",
            parent_id=parent,
            error="CandidateFailed: NaN outputs",
        )
        running = book.start_run("still going", kind="eval")
    done = cli(
        "runs", "--ledger", sqlite_url, "--export", "mlflow", "--tracking-uri", uri, "--json"
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert len(summary["created"]) == 4 and not summary["updated"]

    client = _client(uri)
    exp = client.get_experiment_by_name("frugal")
    runs = {r.data.tags["frugal.run_id"]: r for r in client.search_runs([exp.experiment_id])}
    assert set(runs) == {parent, child, failed, running}
    c = runs[child]
    assert c.data.tags["mlflow.parentRunId"] == runs[parent].info.run_id
    assert c.data.tags["frugal.kind"] == "candidate"
    assert c.data.tags["frugal.energy_source"] == "estimate"
    assert c.data.tags["frugal.artifact.model"] == "/tmp/x/best"
    assert c.data.metrics["quality.spearman"] == pytest.approx(81.5)
    assert c.data.metrics["wall_s"] == pytest.approx(30.0)
    assert c.data.metrics["eval.throughput_per_s"] == pytest.approx(512.5)
    assert c.data.params["eval.device"] == "cpu"
    assert "eval.throughput_per_s" not in c.data.params  # a figure is a metric, not a param
    assert c.info.status == "FINISHED"
    assert runs[parent].data.params["space.passes"] == "['int8']"
    assert runs[failed].info.status == "FAILED"
    assert "NaN" in runs[failed].data.tags["frugal.error"]
    assert runs[running].info.status == "RUNNING"

    # again: nothing duplicated; the run that finished since is updated in place
    with Ledger(sqlite_url) as book:
        book.finish_run(running, usage=_usage(5.0))
    again = cli("runs", "--ledger", sqlite_url, "--export", "mlflow", "--tracking-uri", uri)
    assert again.returncode == 0, again.stderr
    assert "0 created, 1 updated, 3 unchanged" in again.stdout
    after = client.search_runs([exp.experiment_id])
    assert len(after) == 4
    updated = next(r for r in after if r.data.tags["frugal.run_id"] == running)
    assert updated.info.status == "FINISHED" and updated.data.tags["frugal.status"] == "finished"
    assert updated.data.metrics["wall_s"] == pytest.approx(5.0)


def test_export_bad_input_is_one_line(cli, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    for args, needle in (
        (["--export", "mlflow"], "needs --tracking-uri"),
        (["--export", "wandb", "--tracking-uri", "x"], "unknown export"),
        (["--tracking-uri", "file:///tmp/x"], "--export mlflow"),
    ):
        done = cli("runs", "--ledger", sqlite_url, *args)
        assert done.returncode == 2, done.stderr
        assert needle in done.stderr and "Traceback" not in done.stderr
    listed = cli("runs", "--ledger", sqlite_url)  # plain listing still works as before
    assert listed.returncode == 0 and "No runs in the ledger yet" in listed.stdout


def test_readme_sqlite_tracking_uri_reads_back_without_switches(
    cli, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """The README's command, as written (a sqlite:/// store in the current folder), read back
    by a plain MLflow client with no MLFLOW_ALLOW_FILE_STORE switch."""
    with Ledger(sqlite_url) as book:
        run_id = book.record(
            "eval minilm",
            kind="eval",
            status="finished",
            usage=_usage(2.0),
            params={"eval": {"throughput_per_s": 99.5, "batch_size": 32, "device": "cpu"}},
            quality={"spearman": 80.5},
        )
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    done = cli(
        "runs",
        "--ledger",
        sqlite_url,
        "--export",
        "mlflow",
        "--tracking-uri",
        "sqlite:///mlflow.db",
        cwd=tmp_path,
        env={"MLFLOW_ALLOW_FILE_STORE": ""},
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "mlflow.db").exists()
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("frugal")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.data.tags["frugal.run_id"] == run_id
    assert run.data.metrics["eval.throughput_per_s"] == pytest.approx(99.5)
    assert run.data.metrics["eval.batch_size"] == 32
    assert run.data.metrics["quality.spearman"] == pytest.approx(80.5)
    assert run.data.params == {"eval.device": "cpu"}  # numbers are metrics only


def test_unreachable_tracking_server_times_out_with_one_line(cli, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    import time

    with Ledger(sqlite_url) as book:
        book.record("x", kind="job", status="finished", usage=_usage(1.0))
    started = time.monotonic()
    done = cli(
        "runs",
        "--ledger",
        sqlite_url,
        "--export",
        "mlflow",
        "--tracking-uri",
        "http://127.0.0.1:1",
        timeout=85,
    )
    assert time.monotonic() - started < 85
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().startswith("frugal: error: cannot use the MLflow tracking store")
    assert len(done.stderr.strip().splitlines()) == 1
