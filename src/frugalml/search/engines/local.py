"""The default engine: today's process per candidate, forked on this machine
(``worker.Evaluator`` + ``worker.run_isolated``), one candidate at a time."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from frugalml.search.engines import Resources
from frugalml.search.worker import Evaluator, Outcome, run_isolated


@dataclass(eq=False)  # identity: jobs are dict keys
class LocalJob:
    """An evaluation that already ran (the local engine runs it in ``submit``)."""

    placement: dict[str, Any]
    result: Any = None
    error: BaseException | None = None
    used: list[Outcome] = field(default_factory=list)

    def collect(self, used: list[Outcome] | None = None) -> Any:
        if used is not None:
            used.extend(self.used)
        if self.error is not None:
            raise self.error
        return self.result


class LocalEngine:
    name = "local"
    max_parallel = 1

    def __init__(self) -> None:
        self.evaluator = Evaluator()

    def start(self) -> LocalEngine:
        self.evaluator.start()
        return self

    def close(self) -> None:
        self.evaluator.close()

    def nodes(self) -> list[dict[str, Any]]:
        return [{"node_id": None, "host": socket.gethostname()}]

    def submit(
        self, spec: dict[str, Any], work: Path, resources: Resources, *, tag: str = ""
    ) -> LocalJob:
        job = LocalJob({"node_id": None, "host": socket.gethostname(), "pid": os.getpid()})
        limit = resources.memory_bytes
        try:
            job.result = run_isolated(
                spec, work, evaluator=self.evaluator, memory_limit_bytes=limit, used=job.used
            )
        except Exception as e:  # CandidateFailed, or anything the caller should see as failed
            job.error = e
        return job

    def wait(self, jobs: list[Any]) -> Any:
        return jobs[0]
