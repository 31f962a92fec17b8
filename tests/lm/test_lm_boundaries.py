"""Where causal LMs stop: encoders resolve and run as they did before LMs existed (same runtime,
no torchao import, one stderr line on bad input), and only a config that says "causal LM" (or a
GGUF file) reaches the causal-LM runtime."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from tinylm import tiny_llama

from frugalml.models import resolve_path
from frugalml.models.load import find_weights, is_lm_spec
from tinymodels import tiny_bert

HAS_TORCHAO = importlib.util.find_spec("torchao") is not None
needs_torchao = pytest.mark.skipif(not HAS_TORCHAO, reason="torchao (frugalml[llm]) not installed")


def _folder(path: Path, config: dict) -> Path:  # type: ignore[type-arg]
    """A model folder with this config.json and a (never read) weights file."""
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps(config))
    (path / "model.safetensors").write_bytes(b"")
    return path


def test_encoders_resolve_to_the_runtime_they_always_had(tmp_path: Path) -> None:
    onnx_file = tmp_path / "m.onnx"
    onnx_file.write_bytes(b"")
    onnx_dir = tmp_path / "onnx"
    onnx_dir.mkdir()
    (onnx_dir / "model.onnx").write_bytes(b"")
    (onnx_dir / "config.json").write_text(json.dumps({"architectures": ["BertModel"]}))
    expected = {
        resolve_path("minilm"): "torch",  # a sentence-transformers folder
        tiny_bert(tmp_path / "bert"): "torch",
        onnx_file: "onnx",
        onnx_dir: "onnx",
        # BERT's causal-LM head class is still a BERT (an encoder family)
        _folder(tmp_path / "bert-lm", {"model_type": "bert", "architectures": ["BertLMHeadModel"]}):
        "torch",
        # no architectures: the config does not say causal LM, whatever the family
        _folder(tmp_path / "bare-gpt2", {"model_type": "gpt2"}): "torch",
        _folder(tmp_path / "bare-llama", {"model_type": "llama"}): "torch",
    }  # fmt: skip
    for path, engine in expected.items():
        assert find_weights(path)[0] == engine, path
        assert not is_lm_spec(path), path
    assert not is_lm_spec("minilm")


def test_only_a_causal_config_or_gguf_is_a_causal_lm(tmp_path: Path) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    expected = [
        tiny_llama(tmp_path / "llama", context=64),  # architectures: LlamaForCausalLM
        _folder(tmp_path / "gpt2", {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}),
        gguf,
    ]
    for path in expected:
        assert find_weights(path)[0] == "causal_lm", path
        assert is_lm_spec(path), path


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=False
    )


@needs_torchao
def test_an_encoder_never_imports_torchao() -> None:
    """transformers imports torchao when it is installed; frugal's encoder paths must not."""
    r = _python(
        "import sys, numpy as np, frugalml\n"
        "m = frugalml.load('minilm')\n"
        "out = m.encode(['a lobster', 'a crab'])\n"
        "assert np.asarray(out).shape[0] == 2\n"
        "print('torchao' in sys.modules)\n"
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"
    assert r.stderr == ""


@needs_torchao
def test_the_weight_only_pass_imports_torchao_silently() -> None:
    r = _python(
        "import sys\n"
        "from frugalml.passes.weight_only import WeightOnlyQuant\n"
        "WeightOnlyQuant(bits=4, group_size=32).torchao_config()\n"
        "print('torchao' in sys.modules)\n"
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "True"
    assert r.stderr == ""  # no "Failed to load ..._C_mxfp8...so", no _pytree Enum warnings


@needs_torchao
def test_bad_input_on_an_encoder_is_exactly_one_stderr_line(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    text = tmp_path / "text.txt"
    text.write_text("Homarus gammarus is a lobster of the eastern Atlantic .\n" * 50)
    r = cli("eval", "minilm", "--task", "perplexity", "--data", str(text))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("frugal: error") and "causal language model" in lines[0]
