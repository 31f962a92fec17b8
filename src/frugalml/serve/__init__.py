"""Serving: ``frugal serve`` (an ASGI app with a token-budget batcher) and ``frugal loadtest``.

- ``batcher``: ``pack`` (pure: the next batch by a padded-token budget) and ``Batcher``
  (asyncio queue + one worker thread that owns the model).
- ``app``: the FastAPI app: OpenAI ``/v1/embeddings``, TEI ``/embed``, ``/health``,
  ``/metrics``; 429 over the concurrency cap; truncate or refuse long inputs.
- ``metrics``: Prometheus metrics and the run's cost figures ($ per 1k requests, active and
  amortized).
- ``server``: ``serve(MODEL)``: load, open a ``serve`` ledger run, run uvicorn, stop gracefully.
- ``loadtest``: open-loop Poisson load against any OpenAI/TEI embedding endpoint.

The web dependencies are the ``serve`` extra (``pip install 'frugalml[serve]'``; the CLI names
a missing one through ``frugalml.extras``); nothing here is imported by ``import frugalml``.
"""
