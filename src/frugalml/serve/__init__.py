"""Serving: ``frugal serve`` (an ASGI app with a token-budget batcher) and ``frugal loadtest``.

- ``batcher``: ``pack`` (pure: the next batch by a padded-token budget) and ``Batcher``
  (asyncio queue + one worker thread that owns the model).
- ``app``: the FastAPI app: OpenAI ``/v1/embeddings``, TEI ``/embed``, ``/health``,
  ``/metrics``; 429 over the concurrency cap; truncate or refuse long inputs.
- ``metrics``: Prometheus metrics and the run's cost figures ($ per 1k requests, active and
  amortized).
- ``server``: ``serve(MODEL)``: load, open a ``serve`` ledger run, run uvicorn, stop gracefully.
- ``loadtest``: open-loop Poisson load against any OpenAI/TEI embedding endpoint.

The web dependencies are the ``serve`` extra (``pip install 'frugalml[serve]'``); nothing here
is imported by ``import frugalml``.
"""

from __future__ import annotations

import importlib.util

from frugalml.errors import BadInput

_NEEDS = {"fastapi": "fastapi", "uvicorn": "uvicorn", "prometheus_client": "prometheus-client",
          "httpx2": "httpx2"}  # fmt: skip


def require_serve_deps(*modules: str) -> None:
    """Fail with one line naming the extra when a web dependency is missing."""
    missing = [_NEEDS[m] for m in (modules or tuple(_NEEDS)) if not importlib.util.find_spec(m)]
    if missing:
        raise BadInput(
            f"frugal serve/loadtest need {', '.join(missing)} (not installed)",
            hint="pip install 'frugalml[serve]'",
        )
