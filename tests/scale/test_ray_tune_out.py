"""``tune --engine ray --out DIR`` keeps each completed trial's model under ``DIR/trial-NNN``, as
the local study does: trained in a temporary folder on the trial's node, then copied (the
driver shares the machine) or sent through Ray (a node on another host; forced here with
``SHIP_MODELS``) into ``DIR``, and the trial's ledger run points at it. The CLI claims ``DIR``
through ``OutputGuard`` like every command that writes files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from frugalml.ledger import Ledger
from frugalml.outputs import MANIFEST

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from frugalml.data import stdlib_sentences

    folder = tmp_path_factory.mktemp("labelled")
    paths = []
    for name, n, seed in (("train.txt", 48, 1), ("dev.txt", 16, 2)):
        rows = [f"{i % 2} {t}" for i, t in enumerate(stdlib_sentences(n, seed=seed))]
        (folder / name).write_text("\n".join(rows) + "\n")
        paths.append(folder / name)
    return paths[0], paths[1]


@pytest.fixture(scope="module")
def tiny1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tinymodels import tiny_bert

    return tiny_bert(tmp_path_factory.mktemp("t1") / "m", layers=1)


def _temp_models() -> set[Path]:
    import tempfile

    return set(Path(tempfile.gettempdir()).glob("frugal-trial-*"))


@pytest.mark.parametrize("ship", [False, True], ids=["copied", "through-ray"])
def test_tune_on_ray_keeps_each_trials_model_under_out(
    ray_local: Any, tiny1: Path, labelled: tuple[Path, Path], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, ship: bool,
) -> None:  # fmt: skip
    from frugalml.data import load_data
    from frugalml.train import FinetuneConfig, TuneConfig, tune, tune_ray

    monkeypatch.setattr(tune_ray, "SHIP_MODELS", ship)
    before = _temp_models()
    out = tmp_path / "out"
    ledger = f"sqlite:///{tmp_path / 'l.db'}"
    cfg = TuneConfig(
        trials=2, sampler="random", pruner="none", recipes=("full",), batch_sizes=(16,),
        base=FinetuneConfig(eval_mode="sync", evals_per_run=1, max_length=16, epochs=1.0),
    )  # fmt: skip
    train, dev = (load_data(p) for p in labelled)
    res = tune(tiny1, train, dev, cfg, ledger=ledger, engine="ray", max_parallel=2, out=out)
    assert [t.state for t in res.study.trials] == ["complete", "complete"]
    assert sorted(p.name for p in out.iterdir()) == ["trial-000", "trial-001"]
    with Ledger(ledger) as book:
        for t in res.study.trials:
            folder = out / f"trial-{t.number:03d}"
            assert book.get(t.run_id).artifacts["model"] == str(folder.absolute())
            files = {q.name for q in folder.iterdir()}  # the saved model, whole
            assert {"config.json", "frugal.json", "model.safetensors"} <= files
            assert (folder / "model.safetensors").stat().st_size > 0
    assert _temp_models() <= before  # the nodes' temporary copies are gone


def test_cli_tune_engine_ray_out(
    ray_local: Any, cli: Any, tiny1: Path, labelled: tuple[Path, Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    (tmp_path / "mine.txt").write_text("not frugal's")
    args = ["tune", str(tiny1), "--data", str(labelled[0]), "--eval", str(labelled[1]),
            "--trials", "1", "--pruner", "none", "--recipe", "full", "--evals", "1",
            "--epochs", "1", "--max-length", "16", "--eval-mode", "sync",
            "--ledger", f"sqlite:///{tmp_path / 'l.db'}", "--engine", "ray",
            "--address", ray_local.get_runtime_context().gcs_address, "--json"]  # fmt: skip
    proc = cli(*args, "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (out / "trial-000").is_dir() and any((out / "trial-000").iterdir())
    manifest = json.loads((out / MANIFEST).read_text())
    assert "trial-000" in json.dumps(manifest)  # recorded as frugal's (OutputGuard)
    again = cli(*args, "--out", str(out))  # frugal's own folder: replaced, no --overwrite
    assert again.returncode == 0, again.stderr[-2000:]
    refused = cli(*args, "--out", str(tmp_path))  # a folder holding a file frugal did not write
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert (tmp_path / "mine.txt").read_text() == "not frugal's"
