"""``frugal serve`` as a real subprocess, called by real clients (the official ``openai``)."""

from __future__ import annotations

import re
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2
import numpy as np
import pytest
from serving import Server, start_server

from frugalml.ledger import Ledger

TEXTS = [
    "A man is playing a guitar.",
    "The quick brown fox jumps over the lazy dog near the river bank at dawn.",
    "Cheap models are only cheap in production.",
    "Stocks fell sharply on Tuesday.",
    "Ein Hund läuft über die Wiese.",
]


def _openai(server: Server) -> Any:
    import openai

    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def _metric(text: str, name: str) -> float:
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(m.group(1)) if m else 0.0


def test_openai_client_gets_the_models_embeddings(server: Server, reference: Callable) -> None:
    client = _openai(server)
    one = client.embeddings.create(model="minilm", input=TEXTS[0])
    assert len(one.data) == 1 and one.data[0].index == 0
    want_one = reference([TEXTS[0]])[0]
    np.testing.assert_allclose(np.array(one.data[0].embedding), want_one, atol=1e-5)
    assert one.usage.prompt_tokens > 0

    many = client.embeddings.create(model="minilm", input=TEXTS)
    assert [d.index for d in many.data] == list(range(len(TEXTS)))
    got = np.array([d.embedding for d in many.data])
    np.testing.assert_allclose(got, reference(TEXTS), atol=1e-5)
    # the same input as floats (not the client's default base64) gives the same numbers
    floats = client.embeddings.create(model="minilm", input=TEXTS, encoding_format="float")
    np.testing.assert_allclose(np.array([d.embedding for d in floats.data]), got, atol=1e-6)
    # over 32 inputs the server tokenizes off its event loop: same answers, same order
    big = client.embeddings.create(model="minilm", input=TEXTS * 8)
    np.testing.assert_allclose(
        np.array([d.embedding for d in big.data]), np.tile(got, (8, 1)), atol=1e-5
    )


def test_tei_embed_matches_the_model(server: Server, reference: Callable) -> None:
    r = httpx2.post(server.url + "/embed", json={"inputs": TEXTS[:2]}, timeout=120)
    assert r.status_code == 200
    np.testing.assert_allclose(np.array(r.json()), reference(TEXTS[:2]), atol=1e-5)


def test_concurrent_clients_each_get_their_own_result(server: Server, reference: Callable) -> None:
    texts = [f"{t} (client {i})" for i in range(24) for t in TEXTS[:1]]
    texts += [f"request number {i}: " + "word " * (i % 7) for i in range(24)]
    want = reference(texts)

    def call(i: int) -> tuple[int, list[float]]:
        r = httpx2.post(
            server.url + "/v1/embeddings", json={"model": "m", "input": texts[i]}, timeout=120
        )
        assert r.status_code == 200, r.text
        return i, r.json()["data"][0]["embedding"]

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(call, range(len(texts))))
    for i, emb in results:
        np.testing.assert_allclose(np.array(emb), want[i], atol=1e-5)


@pytest.mark.parametrize(
    ("path", "body", "status", "words"),
    [
        ("/v1/embeddings", b"{not json", 422, "json"),
        ("/v1/embeddings", {"model": "m"}, 422, "input"),
        ("/v1/embeddings", {"model": "m", "input": []}, 400, "empty"),
        ("/v1/embeddings", {"model": "m", "input": [101, 2023]}, 400, "token-id"),
        ("/v1/embeddings", {"model": "m", "input": "x", "dimensions": 7}, 400, "dimensions"),
        ("/v1/embeddings", {"model": "m", "input": "x", "encoding_format": "hex"}, 422, "float"),
        ("/embed", {"inputs": 5}, 422, "inputs"),
        ("/embed", {"inputs": "x", "truncation_direction": "Left"}, 422, "left"),
    ],
)
def test_malformed_requests_get_4xx_with_a_message(
    server: Server, path: str, body: Any, status: int, words: str
) -> None:
    kw: dict[str, Any] = {"content": body} if isinstance(body, bytes) else {"json": body}
    r = httpx2.post(
        server.url + path, headers={"content-type": "application/json"}, timeout=60, **kw
    )
    assert r.status_code == status, r.text
    err = r.json()["error"]
    message = err["message"] if isinstance(err, dict) else err
    assert words.lower() in message.lower()
    assert httpx2.get(server.url + "/health", timeout=30).status_code == 200


def test_openai_client_raises_on_a_bad_request(server: Server) -> None:
    import openai

    with pytest.raises(openai.BadRequestError, match="empty"):
        _openai(server).embeddings.create(model="minilm", input=[])


def test_oversized_input_is_truncated_with_the_reason_or_refused(
    server: Server, reference: Callable
) -> None:
    long_text = "frugal models serve cheaply " * 200  # ~800 tokens, limit 256
    r = httpx2.post(
        server.url + "/v1/embeddings",
        json={"model": "m", "input": ["short one", long_text]},
        timeout=120,
    )
    assert r.status_code == 200
    body = r.json()
    assert [t["index"] for t in body["frugal"]["truncated"]] == [1]
    assert body["frugal"]["truncated"][0]["tokens"] > 256
    assert "truncated" in body["frugal"]["reason"]
    assert r.headers["x-frugal-truncated"] == "1"
    # the model truncates the same way when run directly
    np.testing.assert_allclose(body["data"][1]["embedding"], reference([long_text])[0], atol=1e-5)

    refused = httpx2.post(
        server.url + "/embed", json={"inputs": long_text, "truncate": False}, timeout=60
    )
    assert refused.status_code == 413
    assert "limit of 256" in refused.json()["error"]


def test_health_names_the_ledger_run_and_metrics_count_requests(server: Server) -> None:
    health = httpx2.get(server.url + "/health", timeout=30).json()
    assert health["status"] == "ok" and health["run_id"] == server.run_id
    with Ledger(server.ledger_url) as book:
        run = book.get(server.run_id)
    assert run.kind == "serve" and run.status == "running"
    assert run.params["max_wait_ms"] == 20

    before = httpx2.get(server.url + "/metrics", timeout=30).text
    texts = ["one two three", "four five"]
    for t in texts:
        assert httpx2.post(server.url + "/embed", json={"inputs": t}, timeout=60).status_code == 200
    after = httpx2.get(server.url + "/metrics", timeout=30).text
    key = 'frugal_requests_total{code="200",endpoint="/embed"}'
    assert _metric(after, key) - _metric(before, key) == 2
    from transformers import AutoTokenizer

    from frugalml.models import resolve_path

    tok = AutoTokenizer.from_pretrained(str(resolve_path("minilm")))
    want_tokens = sum(len(tok(t)["input_ids"]) for t in texts)
    assert _metric(after, "frugal_tokens_total") - _metric(before, "frugal_tokens_total") == (
        want_tokens
    )
    for name in ("frugal_batch_size_count", "frugal_queue_wait_seconds_count"):
        assert _metric(after, name) > _metric(before, name)
    assert 'frugal_usd_per_1k_requests{basis="active"}' in after
    assert "frugal_energy_joules_estimate" in after and "frugal_cost_usd" in after


def test_429_above_the_cap_then_graceful_shutdown_finishes_in_flight(tmp_path: Path) -> None:
    # a 20 s batching window and a budget never reached: the first two requests stay in
    # flight, so the cap of 2 is full while the others arrive
    srv = start_server(
        tmp_path, "--max-concurrency", "2", "--max-wait-ms", "20000",
        "--max-batch-tokens", "100000", "--flush-s", "0.5",
    )  # fmt: skip
    try:
        results: dict[int, int] = {}

        def slow(i: int) -> None:
            r = httpx2.post(srv.url + "/embed", json={"inputs": f"held {i}"}, timeout=300)
            results[i] = r.status_code

        held = [threading.Thread(target=slow, args=(i,)) for i in range(2)]
        for t in held:
            t.start()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            m = httpx2.get(srv.url + "/metrics", timeout=30).text
            if _metric(m, "frugal_inflight_requests") == 2:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the two held requests never were in flight together")

        rejected = [
            httpx2.post(srv.url + "/v1/embeddings", json={"model": "m", "input": "x"}, timeout=60)
            for _ in range(5)
        ]
        assert [r.status_code for r in rejected] == [429] * 5
        assert "max-concurrency" in rejected[0].json()["error"]["message"]
        assert rejected[0].headers["retry-after"] == "1"
        assert httpx2.get(srv.url + "/health", timeout=30).status_code == 200  # still up

        assert srv.stop(signal.SIGTERM) == 0  # graceful: waits for the held requests
        for t in held:
            t.join(timeout=120)
        assert results == {0: 200, 1: 200}
    finally:
        if srv.proc.poll() is None:
            srv.proc.kill()
    with Ledger(srv.ledger_url) as book:
        run = book.get(srv.run_id)
    assert run.status == "finished", srv.output()
    assert run.usage is not None and run.usage.wall_s > 0
    assert run.quality["requests"] == 2 and run.quality["rejected_429"] == 5
    assert run.quality["usd_per_1k_requests_amortized"] >= run.quality["usd_per_1k_requests_active"]


def test_killed_mid_load_keeps_its_ledger_record(tmp_path: Path) -> None:
    srv = start_server(tmp_path, "--flush-s", "0.2")
    ok = {"n": 0}
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            try:
                r = httpx2.post(srv.url + "/embed", json={"inputs": "kill me softly"}, timeout=30)
                ok["n"] += r.status_code == 200
            except httpx2.TransportError:
                return

    workers = [threading.Thread(target=load) for _ in range(4)]
    for w in workers:
        w.start()
    try:
        deadline = time.monotonic() + 120
        recorded = 0.0
        while time.monotonic() < deadline and recorded < 3:
            with Ledger(srv.ledger_url) as book:
                recorded = book.get(srv.run_id).quality.get("requests", 0.0)
            time.sleep(0.2)
        assert recorded >= 3, "the server never wrote its figures to the ledger"
        srv.stop(signal.SIGKILL)
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=60)
        if srv.proc.poll() is None:
            srv.proc.kill()
    with Ledger(srv.ledger_url) as book:
        run = book.get(srv.run_id)
    assert run.kind == "serve" and run.status == "crashed"
    # nothing written is lost; at most the 4 workers' last requests were counted by the
    # server but killed before their answers arrived
    assert recorded <= run.quality["requests"] <= ok["n"] + len(workers)
    assert run.quality["tokens"] > 0


def test_cli_refuses_bad_options_in_one_line(cli: Callable, tmp_path: Path) -> None:
    r = cli("serve", "minilm", "--oversize", "maybe")
    assert r.returncode == 2 and "oversize" in r.stderr and "Traceback" not in r.stderr
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = cli("serve", "minilm", "--port", str(port), "--ledger", f"sqlite:///{tmp_path}/l.db")
    assert r.returncode == 2 and "cannot listen" in r.stderr and "Traceback" not in r.stderr


def test_an_optimized_onnx_variant_is_served_like_the_original(tmp_path: Path) -> None:
    import frugalml
    from frugalml.passes import OnnxExport, apply
    from frugalml.passes.persist import save

    folder = tmp_path / "onnx-best"
    save(apply(frugalml.load("minilm"), [OnnxExport()]), folder)
    want = frugalml.load(folder).encode(TEXTS)
    srv = start_server(tmp_path, "--flush-s", "0.5", model=str(folder))
    try:
        got = _openai(srv).embeddings.create(model="x", input=TEXTS)
        assert got.model == str(folder)
        np.testing.assert_allclose(np.array([d.embedding for d in got.data]), want, atol=1e-5)
        assert srv.stop(signal.SIGTERM) == 0
    finally:
        if srv.proc.poll() is None:
            srv.proc.kill()
    with Ledger(srv.ledger_url) as book:
        run = book.get(srv.run_id)
    assert run.status == "finished" and "onnx_export" in run.params["model_describe"]
    assert run.quality["requests"] == 1 and run.quality["inputs"] == len(TEXTS)


def test_the_servers_token_counts_are_the_tokenizers_own_untruncated(shared_data: Path) -> None:
    """The event loop counts through the fast tokenizer's Rust core (skipping transformers'
    per-call work): the same counts as the tokenizer called as the model is, on every STS-B
    dev sentence, an empty one and one far over the 256-token limit (not truncated), and
    the worker's own tokenizer still pads and truncates afterwards."""
    import frugalml
    from frugalml.data import load_data
    from frugalml.serve.app import EmbeddingBackend

    model = frugalml.load("minilm")
    backend = EmbeddingBackend(model, "minilm")
    texts = [
        *load_data(shared_data / "sts-b" / "sts-dev.csv").texts_all(),
        "",
        "word " * 600,
        "naïve café — 東京 🙂",
    ]
    want = [len(ids) for ids in model.tokenizer(texts, truncation=False)["input_ids"]]
    got = backend.count_tokens(texts)
    assert got == want
    assert max(got) > 600 and min(got) == 2  # untruncated; [CLS] [SEP] around nothing
    enc = model.tokenize(texts[-3:])
    assert enc["input_ids"].shape[1] <= model.runtime.max_length  # the worker still truncates


def test_counting_tokens_on_the_event_loop_never_unpads_the_workers_batch() -> None:
    """The server counts a request's tokens on the event loop while its worker thread tokenizes
    a padded batch. On one shared fast tokenizer, each call resets the other's padding state,
    so some batches came back ragged: a 500 ("setting an array element with a sequence") for
    every request in the batch, seen under load near the knee (3-20 per rate)."""
    import threading

    import frugalml
    from frugalml.serve.app import EmbeddingBackend

    model = frugalml.load("minilm")
    backend = EmbeddingBackend(model, "minilm")
    texts = ["short one", "a much longer sentence with many more words than the others " * 3]
    errors: list[str] = []
    stop = threading.Event()

    def count() -> None:
        while not stop.is_set():
            backend.count_tokens(texts * 20)

    counter = threading.Thread(target=count)
    counter.start()
    try:
        for _ in range(300):
            try:
                enc = model.tokenize(texts * 8)  # what the worker's run_batch does first
                assert enc["input_ids"].shape == enc["attention_mask"].shape
            except ValueError as e:
                errors.append(str(e))
    finally:
        stop.set()
        counter.join()
    assert errors == []
