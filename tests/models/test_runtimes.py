"""The shape of the models layer: one loader, a registry of runtimes, no state shared by copies,
and no import of the passes above it."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import frugalml
from frugalml.data import stdlib_sentences
from frugalml.models import Model, Runtime, hf, load, resolve_path, runtimes
from frugalml.passes import persist
from tinymodels import tiny_bert

TEXTS = stdlib_sentences(8, seed=9)
MODELS = Path(frugalml.__file__).parent / "models"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_bert(tmp_path_factory.mktemp("rt") / "tiny")


def test_models_never_import_passes() -> None:
    """Not at module level, not inside a function: models/ loads base models only."""
    offenders = []
    for path in MODELS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                names = [node.value] if node.value.startswith("frugalml.passes") else []
            offenders += [f"{path.name}: {n}" for n in names if n.startswith("frugalml.passes")]
    assert offenders == []


def test_loading_and_running_a_base_model_imports_no_pass(tiny: Path) -> None:
    code = (
        "import sys, frugalml.models as m\n"
        f"x = m.load({str(tiny)!r}); x.encode(['a b c']); x.size_bytes()\n"
        "print(sorted(k for k in sys.modules if k.startswith('frugalml.passes')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_one_alias_table_for_every_caller() -> None:
    """eval, optimize, finetune and the data tools resolve the same names the same way."""
    from frugalml.train.prepare import resolve_model

    bundled = resolve_path("minilm")
    for name in ("minilm", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        assert resolve_path(name) == bundled
        assert resolve_model(name) == bundled
    assert load("sentence-transformers/all-MiniLM-L6-v2").base.lower().endswith("all-minilm-l6-v2")


def test_evolve_shares_no_runtime_state_or_figures(tiny: Path) -> None:
    """The ONNX session / input-name cache belongs to one model; a copy starts without it and
    changing a copy's figures leaves the original's alone."""
    model = load(tiny)
    model.encode(TEXTS[:2])
    assert model._state is not None  # the torch runtime cached the network's input names
    copy = model.evolve(runtime=Runtime(batch_size=3))
    assert copy._state is None
    copy.stats["note"] = 1
    copy.dims["hidden_size"] = -1
    assert "note" not in model.stats and model.dims["hidden_size"] == 32
    assert not hasattr(model, "extra")


# ---- a runtime is one module: a toy one registered here runs through load/encode/save/load ---
class BagOfEmbeddings:
    """Token embeddings looked up from ``embeddings.npy`` (no network): a second engine."""

    name = "bag_of_embeddings"

    def find(self, folder: Path) -> Path | None:
        return folder if (folder / "embeddings.npy").exists() else None

    def load(self, path: Path, *, base: str, device: str = "cpu", exact: bool = False) -> Model:
        tokenizer = hf.load_tokenizer(path)
        table = np.load(path / "embeddings.npy")
        return Model(
            engine=self.name,
            output="embedding",
            tokenizer=tokenizer,
            base=base,
            module=table,
            runtime=Runtime(max_length=64),
            dims={"hidden_size": int(table.shape[1]), "num_heads": 0},
        )

    def run(self, model: Model, enc: dict[str, np.ndarray]) -> np.ndarray:
        calls = model.state(lambda: {"batches": 0})
        calls["batches"] += 1
        return np.asarray(model.module[enc["input_ids"]], dtype=np.float32)

    def save(self, model: Model, folder: Path) -> list[str]:
        np.save(folder / "embeddings.npy", model.module)
        return ["embeddings.npy"]

    def size_bytes(self, model: Model) -> int:
        return int(model.module.nbytes)


@pytest.fixture
def bag_runtime() -> Any:
    runtimes.register(BagOfEmbeddings)
    yield runtimes.RUNTIMES[BagOfEmbeddings.name]
    runtimes.RUNTIMES.pop(BagOfEmbeddings.name)


def test_a_new_runtime_is_one_registered_module(
    bag_runtime: Any, tiny: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "bag"
    folder.mkdir()
    load(tiny).tokenizer.save_pretrained(str(folder))
    table = np.random.default_rng(0).normal(size=(30522, 8)).astype(np.float32)
    np.save(folder / "embeddings.npy", table)
    model = frugalml.load(folder)
    assert model.engine == "bag_of_embeddings" and model.size_bytes() == table.nbytes
    rows = model.encode(TEXTS)
    ids = model.tokenizer(TEXTS[0], truncation=True, max_length=64)["input_ids"]
    expected = table[ids].mean(axis=0)
    expected /= np.linalg.norm(expected)  # mean pooling, then L2 norm (the default pooling)
    np.testing.assert_allclose(rows[0], expected, rtol=1e-5, atol=1e-6)
    # a pass that works on any engine, then save and load through the manifest
    variant = frugalml.apply(model, frugalml.passes.RuntimeSettings(batch_size=3))
    saved = persist.save(variant, tmp_path / "saved")
    assert json.loads((saved / "frugal.json").read_text())["engine"] == "bag_of_embeddings"
    back = frugalml.load(saved)
    assert back.engine == "bag_of_embeddings" and back.runtime.batch_size == 3
    np.testing.assert_allclose(back.encode(TEXTS), rows, atol=1e-6)
