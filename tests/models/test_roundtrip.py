"""Everything frugal writes loads everywhere it should: every writer × every reader.

Writers: ``optimize``'s ``best/``, a variant of each pass family saved by
``passes.persist.save``, ``finetune`` full, LoRA merged and LoRA unmerged, ``data clean``.
Readers: ``frugalml.load``, ``frugal eval``, ``frugal compare``, ``frugal gate``,
``frugal optimize`` (and ``frugalml.load_data`` for the cleaned data). The CLI runs in
process (the real ``main``: a traceback fails the test, bad input exits 2) on a tiny BERT and a
few dozen rows, so the whole matrix stays affordable on two cores.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import frugalml
from frugalml.data import stdlib_sentences
from frugalml.passes import (
    LayerDrop,
    OnnxExport,
    OnnxOptimize,
    QuantizeDynamic,
    RuntimeSettings,
    StructuredPrune,
    persist,
)
from tinymodels import tiny_bert, write_jsonl

TEXTS = stdlib_sentences(24, seed=5)
LEDGER = "sqlite:///{root}/ledger.db"


def frugal(*args: str) -> tuple[int, str, str]:
    """Run the real ``frugal`` entry point in process: (exit code, stdout, stderr)."""
    from frugalml.cli import main

    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["frugal", *args]
    code: int = 0
    try:
        with redirect_stdout(out), redirect_stderr(err):
            main()
    except SystemExit as e:
        code = int(e.code or 0) if not isinstance(e.code, str) else 1
    finally:
        sys.argv = argv
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("roundtrip")
    tiny = tiny_bert(root / "tiny")
    texts = write_jsonl(root / "texts.jsonl", [{"text": t} for t in TEXTS])
    words = ["good", "great", "fine", "bad", "awful", "poor"]
    rows = [f"{int(i % 6 < 3)} {words[i % 6]} film number {i} of the week" for i in range(40)]
    labelled = root / "labelled.txt"
    labelled.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return {"root": root, "tiny": tiny, "texts": texts, "labelled": labelled}


# ---- writers ------------------------------------------------------------------------------
PASS_FAMILIES: dict[str, list[Any]] = {
    "structure": [StructuredPrune(heads=0.25, ffn=0.5, recovery_epochs=0)],
    "distill": [LayerDrop(keep=2, epochs=1)],
    "onnx": [OnnxExport(), OnnxOptimize()],
    "quantize_onnx": [OnnxExport(), QuantizeDynamic()],
    "quantize_torch": [QuantizeDynamic()],  # a runtime-only pass: replayed on load
    "runtime": [RuntimeSettings(batch_size=5, length_sort=False)],
}


def write_pass_family(world: dict[str, Any], name: str) -> Path:
    model = frugalml.apply(frugalml.load(world["tiny"]), PASS_FAMILIES[name], texts=TEXTS)
    return persist.save(model, world["root"] / "variants" / name)


def write_finetune(world: dict[str, Any], recipe: str, merge: bool = True) -> Path:
    out = world["root"] / f"ft-{recipe}-{'merged' if merge else 'adapter'}"
    if not out.exists():
        args = ["finetune", str(world["tiny"]), "--data", str(world["labelled"])]
        args += ["--eval", str(world["labelled"]), "--recipe", recipe, "--eval-mode", "none"]
        args += ["--max-steps", "2", "--batch-size", "8", "--max-length", "16", "--out", str(out)]
        args += ["--ledger", LEDGER.format(root=world["root"])]
        args += [] if merge else ["--no-merge"]
        code, _out, err = frugal(*args)
        assert code == 0, err
    return out


@pytest.fixture(scope="module")
def optimize_best(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``best/`` of a real search on the bundled MiniLM (its ONNX int8 variant is reliably
    cheaper than the original, which the tiny model's variants are not)."""
    root = tmp_path_factory.mktemp("optimize")
    texts = write_jsonl(root / "texts.jsonl", [{"text": t} for t in stdlib_sentences(48, seed=2)])
    res = frugalml.optimize(
        "minilm",
        "fidelity",
        texts,
        out=root / "out",
        ledger=f"sqlite:///{root / 'l.db'}",
        tiers={"convert": [(OnnxExport(), QuantizeDynamic(per_channel=True))]},
        max_quality_drop=10.0,
        repeats=1,
        runtime_variants=0,
    )
    assert res.best is not None, res.notes
    return root / "out" / "best"


WRITERS = [*PASS_FAMILIES, "finetune_full", "finetune_lora", "finetune_lora_adapter"]


def written(world: dict[str, Any], writer: str) -> Path:
    if writer == "finetune_full":
        return write_finetune(world, "full")
    if writer == "finetune_lora":
        return write_finetune(world, "lora")
    if writer == "finetune_lora_adapter":
        return write_finetune(world, "lora", merge=False)
    folder = world["root"] / "variants" / writer
    return folder if folder.exists() else write_pass_family(world, writer)


def task_args(world: dict[str, Any], folder: Path) -> list[str]:
    """Fidelity on plain texts for embedders; classification on labelled rows for heads."""
    if persist.read_manifest(folder)["output"] == "logits":
        return ["--task", "classification", "--data", str(world["labelled"])]
    return ["--task", "fidelity", "--data", str(world["texts"])]


# ---- readers ------------------------------------------------------------------------------
def read_load(world: dict[str, Any], folder: Path) -> None:
    model = frugalml.load(folder)
    manifest = persist.read_manifest(folder)
    assert manifest["schema_version"] == persist.SCHEMA_VERSION
    assert model.engine == manifest["engine"] and model.output == manifest["output"]
    rows = model.encode(TEXTS[:6])
    assert rows.shape[0] == 6 and np.isfinite(rows).all()
    if model.output == "logits":
        assert rows.shape[1] == len(model.label_names or ()) == 2


def read_eval(world: dict[str, Any], folder: Path) -> None:
    code, out, err = frugal(
        "eval", str(folder), *task_args(world, folder), "--repeats", "1", "--json",
        "--ledger", LEDGER.format(root=world["root"]),
    )  # fmt: skip
    assert code == 0, err
    assert np.isfinite(json.loads(out)["quality"])


def read_compare(world: dict[str, Any], folder: Path, command: str = "compare") -> None:
    # an embedder against the model it came from; a classifier against itself (its base
    # has no head to score)
    base = folder if persist.read_manifest(folder)["output"] == "logits" else world["tiny"]
    extra = ["--max-cost-ratio", "1000", "--max-quality-drop", "100"] if command == "gate" else []
    code, out, err = frugal(
        command, str(base), str(folder), *task_args(world, folder), "--rounds", "1",
        "--resamples", "100", *extra, "--json", "--ledger", LEDGER.format(root=world["root"]),
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)


def read_gate(world: dict[str, Any], folder: Path) -> None:
    read_compare(world, folder, command="gate")


def read_optimize(world: dict[str, Any], folder: Path) -> None:
    """``optimize`` (the library the CLI calls) loads the folder, evaluates it as the
    baseline, and builds and evaluates a variant of it (one runtime setting, to stay cheap)."""
    args = task_args(world, folder)
    res = frugalml.optimize(
        folder,
        args[1],
        args[3],
        out=world["root"] / "reoptimized" / folder.name,
        ledger=LEDGER.format(root=world["root"]),
        tiers={"convert": [(RuntimeSettings(batch_size=4),)]},
        max_quality_drop=100.0,
        repeats=1,
        runtime_variants=0,
    )
    assert [c["status"] for c in res.candidates] == ["ok", "ok"], res.candidates
    assert res.baseline is not None and np.isfinite(res.baseline["quality"])


READERS: dict[str, Callable[[dict[str, Any], Path], None]] = {
    "load": read_load,
    "eval": read_eval,
    "compare": read_compare,
    "gate": read_gate,
    "optimize": read_optimize,
}


@pytest.mark.slow
@pytest.mark.parametrize("reader", list(READERS))
@pytest.mark.parametrize("writer", WRITERS)
def test_every_writer_loads_in_every_reader(
    writer: str, reader: str, world: dict[str, Any]
) -> None:
    READERS[reader](world, written(world, writer))


@pytest.mark.slow
@pytest.mark.parametrize("reader", list(READERS))
def test_optimize_best_loads_in_every_reader(
    reader: str, optimize_best: Path, world: dict[str, Any]
) -> None:
    READERS[reader]({**world, "tiny": Path(frugalml.models.resolve_path("minilm"))}, optimize_best)


def test_data_clean_output_reads_back(world: dict[str, Any]) -> None:
    out = world["root"] / "clean.txt"
    code, _out, err = frugal(
        "data", "clean", str(world["labelled"]), "--out", str(out), "--embedder", "tfidf",
        "--no-label-issues", "--ledger", LEDGER.format(root=world["root"]),
    )  # fmt: skip
    assert code == 0, err
    back = frugalml.load_data(out)
    original = frugalml.load_data(world["labelled"])
    assert 0 < len(back) <= len(original)
    assert set(back.texts) <= set(original.texts) and back.labels is not None


# ---- manifests: older ones load, newer or foreign ones are refused in one line -------------
def test_older_manifests_load(world: dict[str, Any], tmp_path: Path) -> None:
    """A manifest as finetune wrote it before the schema (``kind``, no ``output``) and one as
    optimize wrote it (``frugal_model: 1``) still load."""
    import shutil

    old_ft = tmp_path / "old-finetune"
    shutil.copytree(written(world, "finetune_full"), old_ft)
    man = json.loads((old_ft / "frugal.json").read_text())
    keep = ("kind", "merged", "base_model", "base_model_path", "recipe", "labels", "max_length")
    (old_ft / "frugal.json").write_text(json.dumps({k: man[k] for k in keep}))
    model = frugalml.load(old_ft)
    assert model.output == "logits" and model.label_names == tuple(man["labels"])
    np.testing.assert_allclose(
        model.encode(TEXTS[:4]), frugalml.load(written(world, "finetune_full")).encode(TEXTS[:4])
    )
    old_opt = tmp_path / "old-optimize"
    shutil.copytree(written(world, "quantize_torch"), old_opt)
    man = json.loads((old_opt / "frugal.json").read_text())
    man["frugal_model"] = 1
    del man["schema_version"]
    (old_opt / "frugal.json").write_text(json.dumps(man))
    assert [p.name for p in frugalml.load(old_opt).passes] == ["quantize_dynamic"]


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ({"schema_version": 99, "engine": "torch", "output": "embedding"}, "schema version 99"),
        ({"something": "else"}, "not a frugal manifest"),
        ("not json", "cannot read"),
    ],
)
def test_newer_or_foreign_manifests_are_refused_in_one_line(
    world: dict[str, Any], tmp_path: Path, manifest: Any, message: str
) -> None:
    import shutil

    folder = tmp_path / "m"
    shutil.copytree(written(world, "runtime"), folder)
    text = manifest if isinstance(manifest, str) else json.dumps(manifest)
    (folder / "frugal.json").write_text(text)
    code, _out, err = frugal(
        "eval", str(folder), *["--task", "fidelity"], "--data", str(world["texts"])
    )
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


# ---- the layout the ecosystem reads -------------------------------------------------------
def test_best_is_a_standard_onnx_sentence_transformers_folder(optimize_best: Path) -> None:
    """transformers' AutoConfig/AutoTokenizer and a plain ONNX Runtime session with the pooling
    docs/optimize.md documents (mean over the attention mask, then L2 norm) give frugal's
    embeddings; the card states cost and quality."""
    import onnxruntime as ort
    from transformers import AutoConfig, AutoTokenizer

    layout = ("config.json", "modules.json", "sentence_bert_config.json", "1_Pooling/config.json")
    for rel in (*layout, "onnx/model.onnx", "README.md", "frugal.json"):
        assert (optimize_best / rel).is_file(), rel
    assert AutoConfig.from_pretrained(str(optimize_best)).model_type == "bert"
    tokenizer = AutoTokenizer.from_pretrained(str(optimize_best))
    session = ort.InferenceSession(str(optimize_best / "onnx" / "model.onnx"))
    enc = tokenizer(TEXTS, padding=True, truncation=True, max_length=256, return_tensors="np")
    names = {i.name for i in session.get_inputs()}
    hidden = session.run(None, {k: v.astype(np.int64) for k, v in enc.items() if k in names})[0]
    mask = enc["attention_mask"][:, :, None].astype(np.float32)
    mean = (hidden * mask).sum(axis=1) / mask.sum(axis=1)
    theirs = mean / np.linalg.norm(mean, axis=1, keepdims=True)
    ours = frugalml.load(optimize_best).encode(TEXTS)
    np.testing.assert_allclose(theirs, ours, atol=1e-5)
    card = (optimize_best / "README.md").read_text()
    assert "cost per 1M requests" in card and "agreement" in card and "$" in card
    assert "onnx_export → quantize_dynamic" in card


# not "structure": a pruned network's per-block widths have no config.json field, so only
# frugalml.load (which reads the shapes from the safetensors) rebuilds it; its ONNX export loads
@pytest.mark.parametrize("writer", ["distill", "runtime"])
def test_torch_variants_load_in_sentence_transformers(world: dict[str, Any], writer: str) -> None:
    from sentence_transformers import SentenceTransformer

    folder = written(world, writer)
    theirs = SentenceTransformer(str(folder), device="cpu").encode(TEXTS, batch_size=8)
    np.testing.assert_allclose(theirs, frugalml.load(folder).encode(TEXTS), atol=1e-5)


def test_saved_files_respect_the_umask(world: dict[str, Any]) -> None:
    """safetensors creates files 0600; every file frugal saves gets the umask's mode."""
    import os
    import stat

    mask = os.umask(0o022)
    os.umask(mask)
    for writer in ("finetune_full", "distill"):
        folder = written(world, writer)
        for path in folder.rglob("*"):
            if path.is_file():
                assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask, path
