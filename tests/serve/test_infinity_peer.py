"""``frugal loadtest`` against a server frugal did not write: Infinity, the peer of the benchmark.

Infinity lives in its own virtual environment (``bash bench/setup_infinity.sh`` builds
``bench/.venv-infinity``); without it this module skips, saying so. With it, a real
``infinity_emb v2`` serves the bundled MiniLM folder and the loadtest finds its OpenAI route
(``/embeddings``, no ``/v1``) and its model name (``/models``) from the base URL alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import numpy as np
import pytest
from serving import free_port

ROOT = Path(__file__).resolve().parents[2]
INFINITY = ROOT / "bench" / ".venv-infinity" / "bin" / "infinity_emb"
STARTUP_S = 300


@pytest.fixture(scope="module")
def infinity(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not INFINITY.exists():
        pytest.skip(f"Infinity is not installed at {INFINITY} (bash bench/setup_infinity.sh)")
    from frugalml.models import resolve_path

    port = free_port()
    log = tmp_path_factory.mktemp("infinity") / "infinity.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "INFINITY_ANONYMOUS_USAGE_STATS": "0"}
    with log.open("w") as fh:
        proc = subprocess.Popen(
            [str(INFINITY), "v2", "--model-id", str(resolve_path("minilm")), "--engine",
             "torch", "--device", "cpu", "--batch-size", "32", "--port", str(port),
             "--host", "127.0.0.1"],
            stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=log.parent,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"infinity_emb did not start:\n{log.read_text()[-3000:]}")
            try:
                if httpx2.get(url + "/models", timeout=5, trust_env=False).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_loadtest_finds_infinitys_route_and_model_from_the_base_url(
    infinity: str, tmp_path: Path
) -> None:
    data = tmp_path / "texts.jsonl"
    texts = ["A man is playing a guitar.", "Stocks fell sharply on Tuesday."]
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    r = subprocess.run(
        [sys.executable, "-m", "frugalml", "loadtest", infinity, "--rate", "3", "--duration",
         "2", "--data", str(data), "--ledger", ledger, "--json"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["api"] == "openai" and out["url"] == infinity + "/embeddings"
    listed = httpx2.get(infinity + "/models", timeout=10, trust_env=False).json()
    assert out["model"] == listed["data"][0]["id"] != "default"
    assert out["server_run_id"] is None  # not a frugal server: nothing to link
    rate = out["rates"][0]
    assert rate["sent"] > 0 and rate["ok"] == rate["sent"]


def test_infinity_serves_the_same_embeddings_as_frugal(infinity: str) -> None:
    import frugalml

    texts = ["A man is playing a guitar.", "Two dogs run across a snowy field."]
    body = {"model": "x", "input": texts, "encoding_format": "float"}
    got = httpx2.post(infinity + "/embeddings", json=body, timeout=120, trust_env=False).json()
    theirs = np.array([d["embedding"] for d in got["data"]])
    ours = frugalml.load("minilm").encode(texts)
    # the same model: the peer is serving what frugal serves (both normalize MiniLM's output)
    np.testing.assert_allclose(theirs, ours, atol=1e-4)
