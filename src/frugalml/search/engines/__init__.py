"""Where candidate evaluations run: ``local`` (default: one process per candidate, forked on
this machine by ``worker.Evaluator``) or ``ray`` (each evaluation a Ray task with declared
resources, on any node of a Ray cluster; ``engines.ray``).

An engine takes a worker spec (``worker`` module docstring) and returns a ``Job``; a job's
``collect`` gives the ``EvalResult`` or raises ``CandidateFailed``, and its ``placement`` says
where it ran (host, Ray node id, hardware) so every figure carries its machine. ``optimize``
picks one with ``get_engine``; nothing here imports Ray unless the ``ray`` engine is chosen.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from frugalml.errors import BadInput
from frugalml.search.worker import Outcome

ENGINES = ("local", "ray")


@dataclass
class Resources:
    """What one evaluation declares to the scheduler (Ray uses it; local ignores it)."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    memory_bytes: int | None = None
    node_id: str | None = None  # pin to this node (a baseline timed where candidates ran)

    @classmethod
    def for_spec(cls, spec: dict[str, Any], memory_limit_bytes: int | None) -> Resources:
        """One CPU per evaluation thread; one GPU when the evaluation runs on CUDA (such a
        candidate only goes to a node that has a GPU)."""
        threads = spec.get("threads") or 1
        gpu = str(spec.get("device") or "cpu").startswith("cuda")
        return cls(float(threads), 1.0 if gpu else 0.0, memory_limit_bytes)


class Job(Protocol):
    placement: dict[str, Any]

    def collect(self, used: list[Outcome] | None = None) -> Any: ...


class Engine(Protocol):
    name: str
    max_parallel: int

    def start(self) -> Engine: ...

    def close(self) -> None: ...

    def submit(
        self, spec: dict[str, Any], work: Path, resources: Resources, *, tag: str = ""
    ) -> Job: ...

    def wait(self, jobs: list[Job]) -> Job:
        """Block until one of ``jobs`` has finished; that job."""
        ...

    def nodes(self) -> list[dict[str, Any]]:
        """The nodes candidates may run on (``node_id``, ``host``); one entry for local."""
        ...


def get_engine(name: str = "local", *, address: str | None = None, max_parallel: int = 1,
               **extra: Any) -> Engine:  # fmt: skip
    """The engine called ``name``; ``BadInput`` for an unknown one or unusable options."""
    if max_parallel < 1:
        raise BadInput("--max-parallel must be at least 1")
    if name == "local":
        if address:
            raise BadInput("--address needs --engine ray")
        if max_parallel != 1:
            raise BadInput(
                "--max-parallel needs --engine ray (the local engine evaluates one candidate "
                "at a time so that candidates don't compete for this machine's cores)"
            )
        from frugalml.search.engines.local import LocalEngine

        return LocalEngine()
    if name == "ray":
        from frugalml.search.engines.ray import RayEngine

        return RayEngine(address=address, max_parallel=max_parallel, **extra)
    raise BadInput(f"unknown engine {name!r}", hint=f"known engines: {', '.join(ENGINES)}")
