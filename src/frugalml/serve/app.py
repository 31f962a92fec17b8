"""The ASGI app of ``frugal serve``: OpenAI and TEI embedding endpoints, health, metrics.

Routes (FastAPI):

- ``POST /v1/embeddings``: OpenAI-compatible (``input`` a string or a list of strings;
  ``encoding_format`` ``float`` or ``base64``). Token-id inputs are refused (send text).
- ``POST /embed``: Hugging Face text-embeddings-inference-compatible (``inputs``, ``truncate``).
- ``GET /health``: ``{"status": "ok", "model": ..., "run_id": ...}`` (the ledger run, so a load
  test can link to it); ``GET /v1/models``: the one model served.
- ``GET /metrics``: Prometheus text format (see ``frugalml.serve.metrics``).

Back-pressure: a request that arrives while ``max_concurrency`` requests are in flight gets 429
at once, so nothing queues without bound. Texts longer than the model's limit are truncated
(the response says which, in a ``frugal`` field and the ``X-Frugal-Truncated`` header) or
refused (``oversize="refuse"``; TEI's per-request ``truncate`` overrides it on ``/embed``).

Seam for causal LMs: a backend has a ``kind``. Only ``"embedding"`` backends exist today; the
generation endpoints (``/v1/completions``, ``/v1/chat/completions`` with streaming) will be
added by a generation backend in its own module, registered in ``create_app`` next to
``_add_embedding_routes``, reusing the admission control, stats and lifespan here.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, ValidationError

from frugalml.models.base import rust_tokenizer
from frugalml.serve.batcher import Batcher
from frugalml.serve.metrics import ServeStats

MAX_INPUTS = 2048  # texts per request (OpenAI's limit too)
Oversize = Literal["truncate", "refuse"]


@dataclass(frozen=True)
class ServeConfig:
    """Batching and admission settings (``frugal serve`` options)."""

    # padded tokens per batch (texts x longest text). Small on a CPU: a big budget lets texts
    # of any length share a batch, padded to the longest (measured: MiniLM on one core
    # spent ~2x the CPU per request with 4096 as with 256, and collapsed past its knee)
    max_batch_tokens: int = 256
    max_wait_ms: float = 5.0  # how long the oldest queued text may wait for company
    max_concurrency: int = 256  # requests in flight before 429
    oversize: Oversize = "truncate"
    flush_s: float = 5.0  # seconds between writes of the run's figures to the ledger


class EmbeddingBackend:
    """A loaded embedding ``Model`` behind the server: counts tokens, runs a batch."""

    kind = "embedding"

    def __init__(self, model: Any, name: str) -> None:
        if getattr(model, "output", "embedding") != "embedding":
            raise ValueError(f"{name} outputs {model.output}, not embeddings")
        self.model, self.name = model, name
        self.max_tokens = int(model.runtime.max_length)
        # Counting runs on the event loop while the worker thread tokenizes a batch. A fast
        # tokenizer keeps its padding/truncation settings in shared state that each call
        # resets, so two threads on one tokenizer let a batch come back unpadded (ragged:
        # "setting an array element with a sequence", a 500 under load). Counting gets its own.
        # A fast tokenizer's Rust ``Tokenizer`` counts without transformers' per-call Python
        # work: one STS-B sentence 14 us instead of 28 here, and in py-spy profiles of the
        # server at 100 req/s (fp32 MiniLM, one core) 13 instead of 25 of ~150 event-loop
        # samples. Its private copy is untruncated and unpadded, never shared with the worker;
        # any other tokenizer counts on a copy of the whole tokenizer.
        self._rust = rust_tokenizer(model.tokenizer)
        self._counter = copy.deepcopy(model.tokenizer) if self._rust is None else None

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text as the model would see it untruncated (special tokens in)."""
        if self._rust is not None:
            return [
                len(e.ids) for e in self._rust.encode_batch(list(texts), add_special_tokens=True)
            ]
        assert self._counter is not None
        enc = self._counter(list(texts), add_special_tokens=True, truncation=False)
        return [len(ids) for ids in enc["input_ids"]]

    def run_batch(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self.model.run_batch(texts), dtype=np.float32)


class OpenAIEmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    input: str | list[str] | list[int] | list[list[int]]
    model: str | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None
    user: str | None = None


class TEIEmbedRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    inputs: str | list[str]
    normalize: bool = True
    truncate: bool | None = None
    truncation_direction: Literal["Right", "right", "Left", "left"] = "Right"


class HTTPProblem(Exception):
    def __init__(self, status: int, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param = status, message, param


def _invalid_message(errors: Sequence[Any]) -> tuple[str, str | None]:
    """A 422's message and the field it is about, from pydantic's errors (first one)."""
    first = errors[0] if errors else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    message = f"invalid request: {first.get('msg', 'bad body')}" + (
        f" (at {where})" if where else ""
    )
    return message, where or None


Body = TypeVar("Body", bound=BaseModel)


def _parse(schema: type[Body], raw: bytes) -> Body:
    """A request body validated from its raw bytes by pydantic's own JSON parser (one pass in
    Rust; FastAPI's body parameter decodes with ``json`` and then validates the objects)."""
    try:
        return schema.model_validate_json(raw)
    except ValidationError as e:
        message, where = _invalid_message(e.errors())
        raise HTTPProblem(422, message, where) from e


def _error(path: str, status: int, message: str, param: str | None = None) -> JSONResponse:
    if path.startswith("/v1/"):
        kind = "rate_limit_error" if status == 429 else "invalid_request_error"
        if status >= 500:
            kind = "server_error"
        body: dict[str, Any] = {
            "error": {"message": message, "type": kind, "param": param, "code": None}
        }
    else:  # TEI's shape
        kind = {429: "Overloaded", 413: "Validation", 422: "Validation"}.get(status, "Backend")
        body = {"error": message, "error_type": kind if status < 500 else "Backend"}
    headers = {"Retry-After": "1"} if status == 429 else None
    return JSONResponse(body, status_code=status, headers=headers)


def _json_dumps() -> Callable[[Any], bytes]:
    """The response encoder: orjson when installed (numpy rows as float32, shortest repr;
    ~20x faster than ``json`` on a 384-float embedding, a measurable share of a request's
    CPU), else the standard library's, rows as lists of floats. Either decodes to the same
    float32 values."""
    try:
        import orjson
    except ImportError:

        def default(obj: Any) -> Any:
            if isinstance(obj, np.ndarray):
                return obj.astype(np.float64).tolist()
            raise TypeError(f"{type(obj).__name__} is not JSON serializable")

        return lambda obj: json.dumps(obj, default=default).encode()
    option = orjson.OPT_SERIALIZE_NUMPY
    return lambda obj: orjson.dumps(obj, option=option)


_dumps = _json_dumps()


def _encode(row: np.ndarray, fmt: str) -> np.ndarray | str:
    """One embedding as the response carries it: base64 of little-endian float32, or the
    float32 row itself (``_dumps`` writes it as a list of numbers)."""
    if fmt == "base64":
        return base64.b64encode(row.astype("<f4", copy=False).tobytes()).decode("ascii")
    return np.ascontiguousarray(row, dtype=np.float32)


def create_app(
    backend: EmbeddingBackend,
    stats: ServeStats,
    config: ServeConfig,
    *,
    run_id: str | None = None,
    on_tick: Callable[[], None] | None = None,
) -> FastAPI:
    """The app for one backend. ``on_tick`` runs every ``config.flush_s`` on a thread."""
    batcher = Batcher(
        backend.run_batch,
        max_batch_tokens=config.max_batch_tokens,
        max_wait_s=config.max_wait_ms / 1000.0,
        on_batch=stats.on_batch,
    )

    async def ticker() -> None:
        assert on_tick is not None
        while True:
            await asyncio.sleep(config.flush_s)
            with contextlib.suppress(Exception):  # a missed write is retried next tick
                await asyncio.to_thread(on_tick)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        batcher.start()
        tick = asyncio.create_task(ticker()) if on_tick else None
        try:
            yield
        finally:  # uvicorn has finished the in-flight requests by now
            if tick:
                tick.cancel()
            await batcher.stop()

    app = FastAPI(title="frugal serve", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.batcher, app.state.stats, app.state.backend = batcher, stats, backend

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        message, where = _invalid_message(e.errors())
        stats.on_response(request.url.path, 422, 0.0)
        return _error(request.url.path, 422, message, where)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": backend.name, "kind": backend.kind, "run_id": run_id}

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(stats.exposition(), media_type="text/plain; version=0.0.4")

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": backend.name, "object": "model", "owned_by": "frugal"}],
        }

    if backend.kind == "embedding":
        _add_embedding_routes(app, backend, batcher, stats, config)
    return app


def _embedder(
    backend: EmbeddingBackend, batcher: Batcher
) -> Callable[[str, list[str], Oversize], Any]:
    """Texts in, embeddings out through the batcher: (rows, tokens kept, truncated inputs)."""

    async def embed(
        path: str, texts: list[str], oversize: Oversize
    ) -> tuple[list[np.ndarray], int, list[dict[str, int]]]:
        if not texts:
            raise HTTPProblem(400, "input is empty: send at least one text", "input")
        if len(texts) > MAX_INPUTS:
            raise HTTPProblem(400, f"{len(texts)} inputs; at most {MAX_INPUTS} per request")
        if len(texts) > 32:  # a big request: tokenize off the event loop
            counts = await asyncio.to_thread(backend.count_tokens, texts)
        else:
            counts = backend.count_tokens(texts)
        limit = backend.max_tokens
        over = [{"index": i, "tokens": n, "kept": limit} for i, n in enumerate(counts) if n > limit]
        if over and oversize == "refuse":
            first = over[0]
            raise HTTPProblem(
                413 if path == "/embed" else 400,
                f"input {first['index']} has {first['tokens']} tokens, over the model's limit of "
                f"{limit} ({len(over)} input(s) too long); shorten it or ask for truncation",
                "input",
            )
        kept = [min(n, limit) for n in counts]
        try:
            rows = await batcher.submit(texts, kept)
        except RuntimeError as e:  # shutting down
            raise HTTPProblem(503, f"server is shutting down: {e}") from e
        return rows, sum(kept), over

    return embed


def _admission(stats: ServeStats, config: ServeConfig) -> Callable[[Request, Any], Any]:
    """Back-pressure and error mapping around a route's handler: 429 above the cap, the
    handler's HTTPProblem as its status, a model failure as 500; counted either way."""

    async def admitted(request: Request, handle: Callable[[], Any]) -> Response:
        path = request.url.path
        t0 = time.perf_counter()
        if stats.inflight >= config.max_concurrency:
            stats.on_response(path, 429, 0.0)
            return _error(
                path,
                429,
                f"server busy: {config.max_concurrency} requests in flight "
                "(--max-concurrency); retry later",
            )
        stats.inflight += 1
        code = 500
        try:
            response: Response = await handle()
            code = response.status_code
            return response
        except HTTPProblem as e:
            code = e.status
            return _error(path, e.status, e.message, e.param)
        except Exception as e:  # the model failed: say so, keep serving
            return _error(path, 500, f"the model failed on this batch: {type(e).__name__}: {e}")
        finally:
            stats.inflight -= 1
            stats.on_response(path, code, time.perf_counter() - t0)

    return admitted


def _add_embedding_routes(
    app: FastAPI,
    backend: EmbeddingBackend,
    batcher: Batcher,
    stats: ServeStats,
    config: ServeConfig,
) -> None:
    embed = _embedder(backend, batcher)
    admitted = _admission(stats, config)

    def truncation_headers(over: list[dict[str, int]]) -> dict[str, str]:
        return {"X-Frugal-Truncated": ",".join(str(o["index"]) for o in over)} if over else {}

    # The embedding routes are Starlette routes taking the raw request: FastAPI's request
    # handling (dependency solving, ``json`` decoding, then validation of the objects) was
    # about a quarter of the event loop's samples per request in py-spy profiles of the
    # server under load; the same pydantic models validate the raw bytes here instead.
    async def openai_embeddings(request: Request) -> Response:
        async def handle() -> Response:
            body = _parse(OpenAIEmbeddingRequest, await request.body())
            texts = [body.input] if isinstance(body.input, str) else list(body.input)
            if any(not isinstance(t, str) for t in texts):
                raise HTTPProblem(400, "token-id input is not supported: send text", "input")
            rows, tokens, over = await embed(request.url.path, texts, config.oversize)  # type: ignore[arg-type]
            dim = int(rows[0].shape[0])
            if body.dimensions is not None and body.dimensions != dim:
                raise HTTPProblem(
                    400, f"dimensions={body.dimensions}: this model gives {dim}", "dimensions"
                )
            out: dict[str, Any] = {
                "object": "list",
                "data": [
                    {
                        "object": "embedding",
                        "index": i,
                        "embedding": _encode(r, body.encoding_format),
                    }
                    for i, r in enumerate(rows)
                ],
                "model": backend.name,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
            if over:
                out["frugal"] = {
                    "truncated": over,
                    "reason": f"inputs over the model's limit of {backend.max_tokens} tokens were "
                    "truncated to it (the server runs with --oversize truncate)",
                }
            return Response(
                _dumps(out), media_type="application/json", headers=truncation_headers(over)
            )

        return await admitted(request, handle)

    async def tei_embed(request: Request) -> Response:
        async def handle() -> Response:
            body = _parse(TEIEmbedRequest, await request.body())
            if body.truncation_direction.lower() != "right":
                raise HTTPProblem(422, "truncation_direction Left is not supported: use Right")
            if not body.normalize and backend.model.pooling.normalize:
                raise HTTPProblem(
                    422, "normalize=false is not supported: this model's pooling normalizes"
                )
            texts = [body.inputs] if isinstance(body.inputs, str) else list(body.inputs)
            mode: Oversize = config.oversize
            if body.truncate is not None:
                mode = "truncate" if body.truncate else "refuse"
            rows, _tokens, over = await embed(request.url.path, texts, mode)
            payload = _dumps([np.ascontiguousarray(r, dtype=np.float32) for r in rows])
            return Response(
                payload, media_type="application/json", headers=truncation_headers(over)
            )

        return await admitted(request, handle)

    app.router.add_route("/v1/embeddings", openai_embeddings, methods=["POST"])
    app.router.add_route("/embed", tei_embed, methods=["POST"])
