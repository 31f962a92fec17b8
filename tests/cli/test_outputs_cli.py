"""Every command that writes refuses, with exit 2 and one line, to write onto the ledger, onto
its own input or onto files it did not write; ``--overwrite`` is the way past the last.

Refusals come before any model loads, so most tests here are fast; the few real runs use a
tiny seeded BERT (``tinymodels``) and a handful of rows.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from frugalml.data import stdlib_sentences
from frugalml.outputs import MANIFEST
from tinymodels import tiny_bert, write_jsonl


def _refused(proc: Any, *needles: str) -> None:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if "frugal: error:" in ln]
    assert len(errors) == 1, proc.stderr
    line = errors[0]
    for needle in needles:
        assert needle in line, line


def _listing(folder: Path) -> dict[str, Any]:
    return dict(json.loads((folder / MANIFEST).read_text())["written"])


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("outputs")
    texts = write_jsonl(root / "texts.jsonl", [{"text": t} for t in stdlib_sentences(24, seed=1)])
    rows = [f"{i % 2} {'a fine' if i % 2 else 'a dull'} film number {i}" for i in range(40)]
    (root / "train.txt").write_text("\n".join(rows) + "\n")
    (root / "dev.txt").write_text("\n".join(rows[:12]) + "\n")
    return {
        "root": root,
        "model": tiny_bert(root / "model", layers=2),
        "texts": texts,
        "train": root / "train.txt",
        "dev": root / "dev.txt",
    }


@pytest.fixture(scope="module")
def optimized(world: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One real optimize into OUT (tiny model, one pass), with its own ledger."""
    import subprocess
    import sys

    root = tmp_path_factory.mktemp("optimized")
    home = root / "home"
    env = {**os.environ, "FRUGAL_HOME": str(home), "FRUGAL_CONFIG": str(home / "none.toml")}
    env.pop("FRUGAL_LEDGER", None)
    ledger = root / "ledger.db"
    out = root / "out"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "frugalml", *args], capture_output=True,
                              text=True, env=env, timeout=900)  # fmt: skip

    args = ["optimize", str(world["model"]), "--task", "fidelity", "--data", str(world["texts"]),
            "--passes", "quantize_dynamic", "--max-quality-drop", "100", "--repeats", "1",
            "--ledger", str(ledger), "--out", str(out)]  # fmt: skip
    first = run(*args)
    assert first.returncode in (0, 2) and "Traceback" not in first.stderr, first.stderr
    return {"run": run, "args": args, "ledger": ledger, "out": out, "root": root}


# ---- report ------------------------------------------------------------------------------
def test_report_never_writes_over_the_ledger(optimized: dict[str, Any]) -> None:
    ledger, out, run = optimized["ledger"], optimized["out"], optimized["run"]
    before = ledger.read_bytes()
    runs_before = json.loads(run("runs", "--json", "--ledger", str(ledger)).stdout)
    assert runs_before
    link = optimized["root"] / "ledger-link.db"
    link.symlink_to(ledger)
    for target in (ledger, link, ledger.parent / "x" / ".." / ledger.name):
        proc = run("report", str(out), "--ledger", str(ledger), "--out", str(target), "--overwrite")
        _refused(proc, "the ledger")
    assert ledger.read_bytes() == before
    assert json.loads(run("runs", "--json", "--ledger", str(ledger)).stdout) == runs_before


def test_report_refuses_a_file_it_did_not_write_and_replaces_its_own(
    optimized: dict[str, Any],
) -> None:
    ledger, out, run = optimized["ledger"], optimized["out"], optimized["run"]
    mine = optimized["root"] / "notes.html"
    mine.write_text("my notes")
    proc = run("report", str(out), "--ledger", str(ledger), "--out", str(mine))
    _refused(proc, "frugal did not write it", "--overwrite")
    assert mine.read_text() == "my notes"
    # its own input (the optimize folder's candidates) is never an output
    proc = run("report", str(out), "--ledger", str(ledger), "--out", str(out / "candidates.json"))
    _refused(proc, "input")
    # a report frugal wrote is replaced on the next run, no flag needed
    target = optimized["root"] / "r.html"
    for _ in range(2):
        done = run("report", str(out), "--ledger", str(ledger), "--out", str(target))
        assert done.returncode == 0, done.stderr
    assert "r.html" in _listing(target.parent)
    done = run("report", str(out), "--ledger", str(ledger), "--out", str(mine), "--overwrite")
    assert done.returncode == 0, done.stderr
    assert mine.read_text() != "my notes"


# ---- optimize and demo -----------------------------------------------------------------
def test_optimize_keeps_a_best_folder_it_did_not_make(
    world: dict[str, Path], cli: Any, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    (out / "best").mkdir(parents=True)
    (out / "best" / "model.safetensors").write_bytes(b"the user's weights")
    proc = cli("optimize", str(world["model"]), "--task", "fidelity", "--data", str(world["texts"]),
               "--out", str(out), "--max-quality-drop", "0")  # fmt: skip
    _refused(proc, "did not write", "best/model.safetensors", "--overwrite")
    assert _tree(out) == {"best/model.safetensors": b"the user's weights"}


def test_optimize_out_naming_a_file_is_one_line(
    world: dict[str, Path], cli: Any, tmp_path: Path
) -> None:
    file = tmp_path / "afile"
    file.write_text("x")
    for out in (file, file / "sub"):
        proc = cli("optimize", str(world["model"]), "--task", "fidelity", "--data",
                   str(world["texts"]), "--out", str(out))  # fmt: skip
        _refused(proc, str(file))
    assert file.read_text() == "x"


def test_optimize_reruns_into_its_own_folder_but_spares_what_it_did_not_write(
    world: dict[str, Path], optimized: dict[str, Any]
) -> None:
    out, run, args = optimized["out"], optimized["run"], optimized["args"]
    listed = _listing(out)
    assert {"candidates.json", "report.md", "report.html", ".work"} <= set(listed)
    again = run(*args)
    assert again.returncode in (0, 2) and "did not write" not in again.stderr, again.stderr
    assert "Traceback" not in again.stderr
    listed = _listing(out)
    best = out / "best"
    if best.exists():
        assert "best/frugal.json" in listed
    # the model under optimization, inside the folder it would write: refused before work
    data_in_work = out / ".work" / "data.jsonl"
    assert data_in_work.exists()
    proc = run(*[a if a != str(world["texts"]) else str(data_in_work) for a in args])
    _refused(proc, "input")
    # a file the user dropped into frugal's folder stops the next run
    best.mkdir(exist_ok=True)
    (best / "notes.txt").write_text("mine")
    _refused(run(*args), "did not write", "notes.txt")
    assert (best / "notes.txt").read_text() == "mine"
    (best / "notes.txt").unlink()


def test_demo_refuses_a_folder_it_did_not_make(cli: Any, tmp_path: Path) -> None:
    out = tmp_path / "demo"
    out.mkdir()
    (out / "demo-data.jsonl").write_text("the user's data\n")
    _refused(cli("demo", "--out", str(out)), "did not write", "demo-data.jsonl")
    assert (out / "demo-data.jsonl").read_text() == "the user's data\n"


# ---- finetune and tune -----------------------------------------------------------------
def _finetune(cli: Any, world: dict[str, Path], out: Path, *extra: str) -> Any:
    return cli("finetune", str(world["model"]), "--data", str(world["train"]), "--eval",
               str(world["dev"]), "--recipe", "full", "--eval-mode", "sync", "--max-length",
               "16", "--max-steps", "2", "--eval-every", "2", "--out", str(out), "--json",
               *extra)  # fmt: skip


def test_finetune_never_writes_over_its_model(world: dict[str, Path], cli: Any) -> None:
    model = world["model"]
    before = _tree(model)
    for out in (model, model / "sub" / "..", model / "1_Pooling" / ".."):
        _refused(_finetune(cli, world, out, "--overwrite"), "input")
    assert _tree(model) == before and not (model / MANIFEST).exists()


def test_finetune_refuses_a_folder_with_the_users_files(
    world: dict[str, Path], cli: Any, tmp_path: Path
) -> None:
    out = tmp_path / "d"
    (out / ".checkpoints").mkdir(parents=True)
    (out / ".checkpoints" / "keep.safetensors").write_bytes(b"weeks of training")
    (out / "config.json").write_text('{"mine": true}')
    before = _tree(out)
    _refused(_finetune(cli, world, out), "did not write", "--overwrite")
    assert _tree(out) == before
    file = tmp_path / "afile"
    file.write_text("x")
    _refused(_finetune(cli, world, file), "is a file")
    # --overwrite: config.json is replaced, the user's checkpoint folder is left alone
    done = _finetune(cli, world, out, "--overwrite")
    assert done.returncode == 0, done.stderr
    assert (out / ".checkpoints" / "keep.safetensors").read_bytes() == b"weeks of training"
    assert json.loads((out / "config.json").read_text()) != {"mine": True}
    listed = _listing(out)
    assert "model.safetensors" in listed and "config.json" in listed
    assert not any(k.startswith(".checkpoints") for k in listed)
    # the user's checkpoint folder is still there, so a plain rerun is refused
    _refused(_finetune(cli, world, out), ".checkpoints/keep.safetensors")
    # a folder all frugal's: the rerun is allowed
    (out / ".checkpoints" / "keep.safetensors").unlink()
    (out / ".checkpoints").rmdir()
    again = _finetune(cli, world, out)
    assert again.returncode == 0, again.stderr


def test_tune_out_naming_a_file_is_one_line(
    world: dict[str, Path], cli: Any, tmp_path: Path
) -> None:
    file = tmp_path / "afile"
    file.write_text("x")
    proc = cli("tune", str(world["model"]), "--data", str(world["train"]), "--eval",
               str(world["dev"]), "--trials", "1", "--out", str(file))  # fmt: skip
    _refused(proc, "is a file")
    assert file.read_text() == "x"


# ---- data clean / select ---------------------------------------------------------------
def _clean(cli: Any, data: Path, out: Path, *extra: str) -> Any:
    return cli("data", "clean", str(data), "--out", str(out), "--embedder", "tfidf",
               "--no-label-issues", *extra)  # fmt: skip


def test_clean_out_and_report_may_not_be_one_file(
    world: dict[str, Path], cli: Any, tmp_path: Path
) -> None:
    x = tmp_path / "x.txt"
    _refused(_clean(cli, world["train"], x, "--report", str(x)), "same path as --out")
    assert not x.exists()


def test_clean_never_writes_over_its_input_or_the_users_files(
    world: dict[str, Path], cli: Any, tmp_path: Path
) -> None:
    data = tmp_path / "in.txt"
    data.write_bytes(world["train"].read_bytes())
    hard = tmp_path / "hard.txt"
    os.link(data, hard)
    before = data.read_bytes()
    for out in (data, hard, tmp_path / "sub" / ".." / "in.txt"):
        _refused(_clean(cli, data, out, "--overwrite"), "input")
    _refused(_clean(cli, data, tmp_path / "o.txt", "--report", str(hard), "--overwrite"), "input")
    assert data.read_bytes() == before
    mine = tmp_path / "mine.txt"
    mine.write_text("mine\n")
    _refused(_clean(cli, data, mine), "frugal did not write it")
    _refused(
        cli(
            "data",
            "select",
            str(data),
            "--fraction",
            "0.5",
            "--strategy",
            "random",
            "--out",
            str(mine),
        ),
        "frugal did not write it",
    )
    assert mine.read_text() == "mine\n"
    # frugal's own output (and its report) are replaced on the next run
    out = tmp_path / "clean.txt"
    for _ in range(2):
        done = _clean(cli, data, out)
        assert done.returncode == 0, done.stderr
    assert {"clean.txt", "clean.txt.report.json"} <= set(_listing(tmp_path))


def test_tune_out_lists_the_trials_it_keeps(
    world: dict[str, Path], cli: Any, tmp_path: Path
) -> None:
    out = tmp_path / "tune"
    args = ["tune", str(world["model"]), "--data", str(world["train"]), "--eval", str(world["dev"]),
            "--trials", "2", "--sampler", "random", "--pruner", "none", "--recipe", "lora",
            "--max-length", "16", "--evals", "1", "--eval-mode", "sync", "--out", str(out),
            "--json"]  # fmt: skip
    done = cli(*args)
    assert done.returncode == 0, done.stderr
    trials = sorted(p.name for p in out.iterdir() if p.name.startswith("trial-"))
    assert trials == ["trial-000", "trial-001"]  # no pruner: both complete and kept
    listed = _listing(out)
    assert {f"{t}/frugal.json" for t in trials} <= set(listed)
    assert not any(".checkpoints" in k for k in listed)
    (out / "trial-000" / "notes.txt").write_text("mine")
    _refused(cli(*args), "did not write", "trial-000/notes.txt")
    assert (out / "trial-000" / "notes.txt").read_text() == "mine"
