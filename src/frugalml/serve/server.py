"""``serve(MODEL)``: load the model, open a ``serve`` ledger run, run uvicorn until stopped.

The run is inserted before the first request and its figures (requests, tokens, busy seconds,
energy, $, $ per 1k requests active and amortized) are written to its quality metrics every
``flush_s`` seconds, so a server killed without warning keeps what it had recorded (the ledger
then reports the run as ``crashed``). SIGINT/SIGTERM stop it gracefully: uvicorn stops accepting
connections, queued texts run at once (the batcher is drained), in-flight requests finish,
and the run is finished with its ``Usage`` (the same meters as every run) and final figures.
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import socket
import sys
from collections.abc import Iterator
from typing import Any

from frugalml.errors import BadInput
from frugalml.serve.app import EmbeddingBackend, ServeConfig, create_app


def _figures_for_ledger(fig: dict[str, Any]) -> dict[str, float]:
    """The numeric figures (None dropped) as quality metrics of the run."""
    return {k: float(v) for k, v in fig.items() if isinstance(v, int | float)}


@contextlib.contextmanager
def _stop_signals_return() -> Iterator[None]:
    """Let SIGINT/SIGTERM end ``server.run()`` normally.

    uvicorn shuts down gracefully on these signals and then raises the signal again with the
    handlers it found; with Python's defaults that would kill the process (SIGTERM) or raise
    KeyboardInterrupt (SIGINT) before the run is finished. Stopping a server is its normal end.
    """
    caught: list[int] = []
    old = {sig: signal.signal(sig, lambda n, _f: caught.append(n)) for sig in _STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _draining_server_class() -> Any:
    import uvicorn

    class DrainingServer(uvicorn.Server):
        """A uvicorn server that tells the batcher when shutdown starts (before it waits for
        the in-flight requests), so their batches run at once."""

        def __init__(self, on_shutdown: Any, config: uvicorn.Config) -> None:
            super().__init__(config)
            self._on_shutdown = on_shutdown

        async def shutdown(self, sockets: Any = None) -> None:
            self._on_shutdown()
            await super().shutdown(sockets=sockets)

    return DrainingServer


def check_port(host: str, port: int) -> None:
    """Refuse a port that is taken (before the model loads, with a one-line reason)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            raise BadInput(
                f"cannot listen on {host}:{port}: {e.strerror}", hint="pick another --port"
            ) from e


def serve(
    model_spec: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    config: ServeConfig | None = None,
    threads: int | None = None,
    ledger: str | None = None,
    instance: str | None = None,
    region: str | None = None,
    device: str = "cpu",
    graceful_timeout_s: float = 30.0,
) -> dict[str, Any]:
    """Serve ``model_spec`` until stopped; the final figures (also in the ledger run)."""
    import uvicorn

    from frugalml.ledger import Ledger
    from frugalml.measure.hardware import hardware
    from frugalml.measure.track import track
    from frugalml.passes.persist import load  # frugalml.load: frugal folders with their passes
    from frugalml.serve.metrics import ServeStats

    config = config or ServeConfig()
    if not 1 <= port <= 65535:
        raise BadInput(f"--port {port} is not a TCP port", hint="use 1-65535")
    tracker = track(
        f"serve {model_spec}", kind="serve", instance=instance, region=region
    )  # resolves the price first: an unknown instance fails before the model loads
    check_port(host, port)
    model = load(model_spec, device=device)
    if threads is not None:
        if threads < 1:
            raise BadInput(f"--threads {threads} must be at least 1")
        model = model.evolve(runtime=dataclasses.replace(model.runtime, threads=threads))
    if model.output != "embedding":
        raise BadInput(
            f"{model_spec} outputs {model.output}; frugal serve serves embedding models for now",
            hint="causal-LM endpoints come with the LLM runtimes",
        )
    name = str(model_spec)
    backend = EmbeddingBackend(model, name)
    backend.run_batch(["warm-up"])  # first-call costs (allocations, graph setup) before timing
    params = {
        "model": name,
        "model_describe": model.describe(),
        "host": host,
        "port": port,
        "threads": threads,
        **dataclasses.asdict(config),
    }
    book = Ledger(ledger)
    try:
        tracker = track(
            f"serve {name}", ledger=book, kind="serve", params=params, instance=instance,
            region=region,
        )  # fmt: skip
        with tracker as run:
            stats = ServeStats(tracker.price, hardware(), name)

            def flush() -> None:
                run.log_quality(**_figures_for_ledger(stats.figures()))

            app = create_app(backend, stats, config, run_id=run.id, on_tick=flush)
            server = _draining_server_class()(
                app.state.batcher.drain,
                uvicorn.Config(
                    app,
                    host=host,
                    port=port,
                    log_level="warning",
                    access_log=False,
                    timeout_graceful_shutdown=int(graceful_timeout_s),
                    lifespan="on",
                ),
            )
            print(
                f"frugal serve: {name} on http://{host}:{port} (ledger run {run.id}); "
                "Ctrl-C stops it",
                file=sys.stderr,
                flush=True,
            )
            with _stop_signals_return():
                server.run()
        usage = run.usage
        assert usage is not None
        final = stats.figures(wall_s=usage.wall_s, energy_j=usage.energy_j)
        final["energy_source"] = usage.energy_source
        book.log_quality(run.id, **_figures_for_ledger(final))
        return {"run_id": run.id, **final}
    finally:
        book.close()
