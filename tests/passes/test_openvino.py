"""OpenVINO int8 (NNCF) on the real bundled MiniLM: close to fp32, saved and loaded back as it
ran, broken folders and a missing OpenVINO refused in one line, and in the CPU search space."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest

import frugalml
from frugalml.data import stdlib_sentences
from frugalml.errors import BadInput
from frugalml.models import Model, load
from frugalml.passes import LayerDrop, OnnxExport, OpenVINOInt8, PassContext, apply, problem
from frugalml.passes.openvino import available
from frugalml.passes.persist import save

pytestmark = pytest.mark.skipif(
    not available(), reason="openvino + nncf (frugalml[openvino]) not installed"
)
CALIBRATION = stdlib_sentences(64, seed=11)
TEXTS = stdlib_sentences(96, seed=12)[64:]  # none of the calibration texts


def frugal(*args: str) -> tuple[int, str, str]:
    """Run the real ``frugal`` entry point in process: (exit code, stdout, stderr)."""
    from frugalml.cli import main

    out, err = io.StringIO(), io.StringIO()
    argv, sys.argv = sys.argv, ["frugal", *args]
    code = 0
    try:
        with redirect_stdout(out), redirect_stderr(err):
            main()
    except SystemExit as e:
        code = int(e.code or 0) if not isinstance(e.code, str) else 1
    finally:
        sys.argv = argv
    return code, out.getvalue(), err.getvalue()


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Model]:
    work = tmp_path_factory.mktemp("ov")
    minilm = load("minilm")
    ctx = PassContext(texts=CALIBRATION, work_dir=work)
    exported = apply(minilm, OnnxExport(), ctx)
    return {
        "fp32": minilm,
        "onnx": exported,
        "int8": apply(exported, OpenVINOInt8(), ctx),
    }


def test_int8_embeddings_stay_close_to_fp32_with_int8_weights(built: dict[str, Model]) -> None:
    q = built["int8"]
    assert q.engine == "openvino" and q.dtype == "int8"
    assert [p.name for p in q.passes] == ["onnx_export", "openvino_int8"]
    cos = _cos(built["fp32"].encode(TEXTS), q.encode(TEXTS))
    assert cos.mean() > 0.99 and cos.min() > 0.97, (cos.mean(), cos.min())
    # the MatMul weights are stored as int8 constants: the weights file is about a quarter of
    # the float32 graph's (embeddings stay float)
    xml = Path(q.source)
    assert 'element_type="i8"' in xml.read_text(encoding="utf-8")
    assert xml.with_suffix(".bin").stat().st_size < 0.6 * built["onnx"].size_bytes()


def test_float_parts_run_in_the_precision_the_ir_records(built: dict[str, Model]) -> None:
    import openvino as ov

    q = built["int8"]
    q.encode(TEXTS[:2])
    compiled = q.engine_runtime.compiled(q)[0]
    assert compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.f32
    network = ov.Core().read_model(str(q.source))
    assert network.get_rt_info(["runtime_options", "INFERENCE_PRECISION_HINT"]).astype(str) == (
        "f32"
    )


def test_a_saved_folder_loads_back_and_gives_the_same_outputs(
    built: dict[str, Model], tmp_path: Path
) -> None:
    q = built["int8"]
    folder = save(q, tmp_path / "ov")
    man = json.loads((folder / "frugal.json").read_text(encoding="utf-8"))
    assert man["engine"] == "openvino" and man["dtype"] == "int8"
    assert {"openvino/openvino_model.xml", "openvino/openvino_model.bin"} <= set(man["files"])
    assert not (folder / "onnx").exists()
    again = frugalml.load(folder)
    assert again.engine == "openvino"
    assert [p.name for p in again.passes] == ["onnx_export", "openvino_int8"]
    np.testing.assert_array_equal(again.encode(TEXTS), q.encode(TEXTS))
    assert again.size_bytes() == q.size_bytes()


def _texts_file(tmp_path: Path) -> Path:
    path = tmp_path / "texts.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS[:8]), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        (
            lambda f: (f / "openvino/openvino_model.xml").write_text("<net", "utf-8"),
            "not a readable",
        ),
        (lambda f: (f / "openvino/openvino_model.bin").unlink(), "no weights file"),
    ],
    ids=["truncated xml", "missing bin"],
)
def test_a_broken_openvino_folder_is_one_line(
    built: dict[str, Model], tmp_path: Path, break_it: object, message: str
) -> None:
    folder = save(built["int8"], tmp_path / "ov")
    break_it(folder)  # type: ignore[operator]
    code, _out, err = frugal(
        "eval",
        str(folder),
        "--task",
        "fidelity",
        "--data",
        str(_texts_file(tmp_path)),
        "--ledger",
        f"sqlite:///{tmp_path / 'l.db'}",
    )
    assert code == 2
    assert len(err.strip().splitlines()) <= 2 and "Traceback" not in err  # message + hint
    assert message in err


BLOCK = """
import importlib.abc, sys
class _No(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("openvino", "nncf"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, _No())
from frugalml.cli import main
sys.argv = ["frugal", *sys.argv[1:]]
main()
"""


def test_without_openvino_a_folder_and_the_pass_say_what_to_install(
    built: dict[str, Model], tmp_path: Path
) -> None:
    folder = save(built["int8"], tmp_path / "ov")
    args = ["eval", str(folder), "--task", "fidelity", "--data", str(_texts_file(tmp_path))]
    done = subprocess.run(
        [sys.executable, "-c", BLOCK, *args, "--ledger", f"sqlite:///{tmp_path / 'l.db'}"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "frugalml[openvino]" in done.stderr
    code = (
        BLOCK.split("from frugalml.cli")[0]
        + "from frugalml.passes import OnnxExport, OpenVINOInt8, problem\n"
        + "print(problem([OnnxExport(), OpenVINOInt8()]))\n"
    )
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "frugalml[openvino]" in shown.stdout


def test_bad_settings_are_refused() -> None:
    with pytest.raises(BadInput):
        OpenVINOInt8(precision="int4")  # type: ignore[arg-type]
    with pytest.raises(BadInput):
        OpenVINOInt8(calibration_texts=0)
    # OpenVINO int8 reads an ONNX graph: not straight from PyTorch, not twice
    assert problem([OpenVINOInt8()]) is not None
    assert problem([OnnxExport(), OpenVINOInt8()]) is None
    assert problem([LayerDrop(keep=4), OnnxExport(), OpenVINOInt8()]) is None


def test_the_cpu_search_tries_openvino_int8_next_to_each_distilled_student() -> None:
    """Right after each distilled layer-drop + ONNX int8 pipeline comes the same student in
    OpenVINO int8 (its prefix, the distillation, is built once), and ONNX + OpenVINO int8
    follows ONNX + int8 among the conversions; never without tune text to calibrate on."""
    from frugalml.search.space import DISTILL_MORE, base_pipelines

    tiers = base_pipelines(engine="torch", device="cpu", layers=6, has_tune_text=True)
    structure = tiers["structure"]
    for keep in (3, 4):
        drop = LayerDrop(keep=keep, **DISTILL_MORE)
        at = next(i for i, p in enumerate(structure) if p[0] == drop)
        assert isinstance(structure[at][-1], frugalml.passes.QuantizeDynamic)
        assert structure[at + 1] == (drop, OnnxExport(), OpenVINOInt8())
    convert = tiers["convert"]
    assert convert.index((OnnxExport(), OpenVINOInt8())) == 1
    bare = base_pipelines(engine="torch", device="cpu", layers=6, has_tune_text=False)
    assert not any(isinstance(c, OpenVINOInt8) for t in bare.values() for p in t for c in p)
    gpu = base_pipelines(engine="torch", device="cuda", layers=6, has_tune_text=True)
    assert not any(isinstance(c, OpenVINOInt8) for t in gpu.values() for p in t for c in p)


def test_saving_another_engine_over_an_openvino_folder_replaces_its_weights(
    built: dict[str, Model], tmp_path: Path
) -> None:
    """The runtimes are tried OpenVINO first: an IR left behind would be loaded instead."""
    folder = save(built["int8"], tmp_path / "m")
    assert "openvino/openvino_model.xml" in (folder / "README.md").read_text(encoding="utf-8")
    save(built["onnx"], folder)
    assert not (folder / "openvino" / "openvino_model.xml").exists()
    assert frugalml.load(folder).engine == "onnx"


def test_batches_from_several_threads_at_once_get_their_own_rows(
    built: dict[str, Model],
) -> None:
    """Infer requests are not thread-safe: concurrent callers are served one batch at a time."""
    from concurrent.futures import ThreadPoolExecutor

    q = built["int8"]
    alone = [q.encode(TEXTS[i : i + 8]) for i in range(0, 32, 8)]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda i: q.encode(TEXTS[i : i + 8]), range(0, 32, 8)))
    for a, b in zip(alone, together, strict=True):
        np.testing.assert_array_equal(a, b)


def test_nncf_sends_no_telemetry_when_the_pass_runs() -> None:
    """NNCF reports usage unless a consent file says no (it stubs itself only under pytest or
    in CI, so this runs in a plain child process): the pass swaps in its no-op stub."""
    import os

    code = (
        "import nncf\n"
        "from nncf.telemetry import decorator, wrapper\n"
        "print(type(decorator.telemetry).__name__)\n"
        "from frugalml.passes.openvino import _nncf_without_telemetry\n"
        "_nncf_without_telemetry()\n"
        "print(type(decorator.telemetry).__name__, type(wrapper.telemetry).__name__)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "NNCF_CI", "NNCF_DEV")}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    before, after = done.stdout.strip().splitlines()[-2:]
    assert before == "NNCFTelemetry"  # what a user's process gets from NNCF itself
    assert after == "MagicMock MagicMock"  # NNCFTelemetryStub is unittest.mock.MagicMock
