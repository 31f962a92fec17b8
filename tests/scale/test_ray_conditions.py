"""A candidate timed on Ray runs under the same conditions as one timed by the local engine
(real single-node Ray cluster): the same niceness (Ray renices its workers +15 by default, so
a Ray candidate lost its core to any other work while a local one kept it), the same CPUs, and
the search process's thread variables (Ray sets ``OMP_NUM_THREADS`` to the task's CPUs)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from frugalml.search.engines import Resources, get_engine
from frugalml.search.worker import Outcome, thread_env

pytestmark = pytest.mark.timeout(300)


def _spec(model: Path, data: Path, out: Path) -> dict[str, Any]:
    return {"task": "fidelity", "metric": None, "seed": 0,
            "data": {"path": str(data), "options": {}}, "device": "cpu", "threads": 1,
            "instance": None, "region": None, "repeats": 1, "model": str(model),
            "split": "select", "reference": None, "out": str(out)}  # fmt: skip


def _evaluate(engine: Any, spec: dict[str, Any], work: Path) -> Outcome:
    job = engine.submit(spec, work, Resources.for_spec(spec, None), tag=Path(spec["out"]).name)
    engine.wait([job])
    used: list[Outcome] = []
    result = job.collect(used)
    assert result.throughput_per_s > 0
    return used[-1]


def test_a_ray_candidate_runs_with_the_local_engines_niceness_cpus_and_threads(
    ray_local: Any,
    tiny_model: Path,
    texts: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the cluster started with OMP_NUM_THREADS=1 (conftest); the search's own setting is now
    # another one, and one variable the workers had is unset here: the search's must win
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.setenv("MKL_NUM_THREADS", "2")
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    driver_nice = os.getpriority(os.PRIO_PROCESS, 0)
    outcomes = {}
    for name in ("local", "ray"):
        engine = get_engine(name).start()
        try:
            spec = _spec(tiny_model, texts, tmp_path / f"{name}-out")
            outcomes[name] = _evaluate(engine, spec, tmp_path)
        finally:
            engine.close()
    local, on_ray = outcomes["local"], outcomes["ray"]
    assert local.thread_env == thread_env()
    assert local.thread_env is not None and local.thread_env["OMP_NUM_THREADS"] == "2"
    assert on_ray.thread_env == local.thread_env  # not Ray's OMP_NUM_THREADS=1
    assert local.nice == driver_nice
    # a Ray worker is renice'd +15 over its raylet (capped at 19) unless told otherwise
    assert on_ray.nice == local.nice
    assert on_ray.cpus == local.cpus and local.cpus
