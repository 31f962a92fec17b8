"""Ray tests: a real Ray cluster on this machine, never a mock.

``ray_local`` starts a single-node cluster (``num_cpus=2``, no dashboard, usage stats off) once
per test module, since a start costs seconds; the two-node tests build their own
``ray.cluster_utils.Cluster``. Without Ray installed these tests skip, unless
``FRUGAL_REQUIRE_RAY=1`` (CI), where they fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def _require_ray() -> Any:
    try:
        import ray
    except ImportError:
        if os.environ.get("FRUGAL_REQUIRE_RAY", "") not in ("", "0"):
            pytest.fail("FRUGAL_REQUIRE_RAY is set but Ray is not installed (pip install .[ray])")
        pytest.skip("Ray is not installed: pip install 'frugalml[ray]'")
    return ray


@pytest.fixture(scope="module")
def ray_module() -> Any:
    return _require_ray()


@pytest.fixture(scope="module")
def ray_local(ray_module: Any) -> Iterator[Any]:
    """A real single-node Ray cluster for the module (2 CPUs)."""
    ray = ray_module
    if ray.is_initialized():
        ray.shutdown()
    os.environ["OMP_NUM_THREADS"] = "1"  # the workers inherit it: tiny models, shared machine
    # "local": a new cluster, never one another test or process runs on this machine
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tinymodels import tiny_bert

    return tiny_bert(tmp_path_factory.mktemp("tiny") / "m")


@pytest.fixture(scope="module")
def texts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from frugalml.data import stdlib_sentences
    from tinymodels import write_jsonl

    path = tmp_path_factory.mktemp("data") / "texts.jsonl"
    return write_jsonl(path, [{"text": t} for t in stdlib_sentences(48, seed=5)])
