"""Fixtures: one real ``frugal serve`` per module, and the in-process reference model."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from serving import Server, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the read-only tests of a module (truncate mode, 20 ms batching window)."""
    tmp = tmp_path_factory.mktemp("serve")
    srv = start_server(tmp, "--max-wait-ms", "20", "--flush-s", "0.5")
    try:
        yield srv
    finally:
        if srv.proc.poll() is None:
            srv.stop()


@pytest.fixture(scope="module")
def reference() -> Callable[[list[str]], object]:
    """``frugalml.load('minilm').encode`` in this process: what the server must return."""
    import frugalml

    model = frugalml.load("minilm")
    return model.encode
