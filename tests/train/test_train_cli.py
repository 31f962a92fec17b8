"""``frugal finetune`` / ``frugal tune`` through the real command line (subprocess).

Bad input must end with ``frugal: error: ...`` (what to do), exit code 2 and no traceback.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def _no_traceback(out) -> None:  # type: ignore[no-untyped-def]
    assert "Traceback" not in out.stderr and "Traceback" not in out.stdout


def test_finetune_cli_json_and_ledger(cli, tiny_model, sst2_small, tmp_path) -> None:  # type: ignore[no-untyped-def]
    train, dev = sst2_small
    out = tmp_path / "m"
    res = cli(
        "finetune",
        str(tiny_model),
        "--data",
        str(train),
        "--eval",
        str(dev),
        "--recipe",
        "full",
        "--eval-mode",
        "sync",
        "--max-length",
        "32",
        "--max-steps",
        "4",
        "--eval-every",
        "2",
        "--out",
        str(out),
        "--json",
    )
    assert res.returncode == 0, res.stderr
    result = json.loads(res.stdout)
    assert result["steps"] == 4 and [e["step"] for e in result["evals"]] == [2, 4]
    assert result["model_dir"] == str(out) and (out / "frugal.json").is_file()
    assert result["usage"]["cost_usd"] > 0 and result["usage"]["energy_source"]
    assert result["data"]["train"] == {
        "path": str(train),
        "format": "label-text",
        "encoding": "utf-8",
        "rows": 240,
    }
    assert result["data"]["eval"]["path"] == str(dev)
    runs = json.loads(cli("runs", "--kind", "finetune", "--json").stdout)
    assert [r["id"] for r in runs] == [result["run_id"]]
    assert runs[0]["quality"]["accuracy"] == pytest.approx(result["accuracy"])


def test_finetune_cli_nan_loss_keeps_best(cli, tiny_model, sst2_small, tmp_path) -> None:  # type: ignore[no-untyped-def]
    train, dev = sst2_small
    out = tmp_path / "nan"
    res = cli(
        "finetune",
        str(tiny_model),
        "--data",
        str(train),
        "--eval",
        str(dev),
        "--recipe",
        "full",
        "--lr",
        "1e30",
        "--eval-mode",
        "sync",
        "--eval-every",
        "1",
        "--max-length",
        "32",
        "--max-steps",
        "8",
        "--out",
        str(out),
    )
    assert res.returncode == 2
    _no_traceback(res)
    assert "frugal: error: the loss became NaN/inf at step" in res.stderr
    assert "kept the best checkpoint (step 1" in res.stderr and "lower --lr" in res.stderr
    assert (out / "model.safetensors").is_file()
    runs = json.loads(cli("runs", "--json").stdout)
    assert runs[0]["status"] == "failed"


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def bad_files(tmp_path: Path) -> dict[str, Path]:
    return {
        "no_label": _write(tmp_path / "nolabel.csv", "text\ngood film\nbad film\n"),
        "one_class": _write(tmp_path / "one.txt", "1 good film\n1 great film\n1 fine film\n"),
        "two_class": _write(tmp_path / "two.txt", "1 good film\n0 bad film\n1 fine film\n"),
        "other_dev": _write(tmp_path / "dev3.txt", "1 good\n2 so so\n3 what\n"),
        "empty": _write(tmp_path / "empty.txt", ""),
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "no_label", "--eval", "two_class"], "has no label column"),
        (["--data", "one_class", "--eval", "two_class"], "single class ('1')"),
        (["--data", "two_class", "--eval", "other_dev"], "evaluation labels not in the head: 2, 3"),
        (["--data", "empty", "--eval", "two_class"], "has no data rows"),
        (
            ["--data", "two_class", "--eval", "two_class", "--precision", "fp16"],
            "fp16 training needs a CUDA GPU",
        ),
        (["--data", "two_class", "--eval", "two_class", "--task", "regression"], "unknown task"),
        (
            ["--data", "two_class", "--eval", "two_class", "--target", "f1=0.9"],
            "cannot read target",
        ),
        (["--data", "two_class", "--eval", "two_class", "--recipe", "qlora"], "unknown recipe"),
    ],
    ids=[
        "missing-label-column",
        "single-class",
        "labels-not-in-head",
        "empty-file",
        "fp16-on-cpu",
        "unknown-task",
        "bad-target",
        "bad-recipe",
    ],
)
def test_finetune_cli_bad_input(cli, tiny_model, bad_files, args, message) -> None:  # type: ignore[no-untyped-def]
    argv = [bad_files.get(a, a) for a in args]
    res = cli("finetune", str(tiny_model), *map(str, argv))
    assert res.returncode == 2, res.stderr
    _no_traceback(res)
    assert "frugal: error:" in res.stderr and message in res.stderr


def test_finetune_cli_missing_model(cli, bad_files, tmp_path) -> None:  # type: ignore[no-untyped-def]
    res = cli(
        "finetune",
        str(tmp_path / "nope"),
        "--data",
        str(bad_files["two_class"]),
        "--eval",
        str(bad_files["two_class"]),
    )
    assert res.returncode == 2 and "model not found" in res.stderr
    _no_traceback(res)


@pytest.mark.parametrize("command", ["finetune", "tune"])
def test_missing_eval_file_names_the_eval_option(
    cli, tiny_model, bad_files, tmp_path, command
) -> None:  # type: ignore[no-untyped-def]
    res = cli(
        command,
        str(tiny_model),
        "--data",
        str(bad_files["two_class"]),
        "--eval",
        str(tmp_path / "nope.txt"),
    )
    assert res.returncode == 2 and "check the path given to --eval" in res.stderr
    assert "--data" not in res.stderr
    _no_traceback(res)


def test_tune_cli_refuses_bad_storage(cli, tiny_model, bad_files, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import sqlite3

    data = str(bad_files["two_class"])
    ledger = tmp_path / "ledger.db"
    assert cli("runs", "--ledger", str(ledger)).returncode == 0  # a ledger with its tables
    tables_before = sqlite3.connect(ledger).execute("select name from sqlite_master").fetchall()
    base = ["tune", str(tiny_model), "--data", data, "--eval", data, "--ledger", str(ledger)]
    for storage, message in (
        ("foo://bar", "cannot use the Optuna storage 'foo://bar'"),
        ("optuna.db", "cannot use the Optuna storage"),
        (f"sqlite:///{ledger}", "is the ledger's database"),
        (f"sqlite:///{tmp_path}/./ledger.db", "is the ledger's database"),
    ):
        res = cli(*base, "--storage", storage, "--trials", "1")
        assert res.returncode == 2, (storage, res.stderr)
        assert message in res.stderr and len(res.stderr.strip().splitlines()) == 1
        _no_traceback(res)
    tables = sqlite3.connect(ledger).execute("select name from sqlite_master").fetchall()
    assert tables == tables_before  # no Optuna table in the ledger


def test_tune_cli_records_trials(cli, tiny_model, sst2_small) -> None:  # type: ignore[no-untyped-def]
    train, dev = sst2_small

    def tune(*args: str):  # type: ignore[no-untyped-def]
        return cli("tune", str(tiny_model), "--data", str(train), "--eval", str(dev), *args)

    res = tune(
        "--trials",
        "2",
        "--sampler",
        "random",
        "--pruner",
        "hyperband",
        "--reduction-factor",
        "2",
        "--min-resource",
        "1",
        "--recipe",
        "lora",
        "--max-length",
        "32",
        "--evals",
        "2",
        "--eval-mode",
        "sync",
        "--json",
    )
    assert res.returncode == 0, res.stderr
    result = json.loads(res.stdout)
    study = result["study"]
    assert len(study["trials"]) == 2 and study["best_accuracy"] is not None
    for t in study["trials"]:  # each checkpoint's accuracy as reported to the pruner
        assert len(t["curve"]) == (2 if t["state"] == "complete" else 1)
        if t["state"] == "complete":
            assert t["accuracy"] == max(t["curve"])
    runs = json.loads(cli("runs", "--json").stdout)
    tune_runs = [r for r in runs if r["kind"] == "tune"]
    trials = [r for r in runs if r["kind"] == "trial"]
    assert len(tune_runs) == 1 and len(trials) == 2
    assert {r["parent_id"] for r in trials} == {tune_runs[0]["id"]}
    assert study["compute"]["cpu_s"] == pytest.approx(sum(r["cpu_s"] for r in trials))
    human = tune(
        "--trials",
        "1",
        "--pruner",
        "none",
        "--recipe",
        "full",
        "--max-length",
        "32",
        "--evals",
        "1",
        "--eval-mode",
        "sync",
    )
    assert human.returncode == 0, human.stderr
    assert "best dev accuracy" in human.stdout and "total compute" in human.stdout
    bad = tune(
        "--evals",
        "3",
        "--min-resource",
        "3",
    )
    assert bad.returncode == 2
    assert "min resource 3 must be at least 1 and below the 3 checkpoints" in bad.stderr
