"""Two simulated nodes (``ray.cluster_utils.Cluster``, both on this machine): a pass that
needs a GPU is only placed on the node that declares one, and candidates are timed against the
original timed on their own node.

The "GPU" here is Ray's ``GPU`` resource count (0 on the head, 1 on the second node): this
simulates placement, not a real GPU; the evaluations asked to run on CUDA fail (no CUDA on
this machine) and the test only looks at where Ray put them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from raycluster import simulated_cluster

import frugalml
from frugalml.errors import CandidateFailed
from frugalml.passes import OnnxExport, QuantizeDynamic
from frugalml.search.engines import Resources

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def two_nodes(ray_module: Any) -> Iterator[dict[str, str]]:
    """{"cpu": node id without a GPU resource, "gpu": node id with GPU=1}."""
    ray = ray_module
    with simulated_cluster(ray, 1, [{"num_cpus": 1, "num_gpus": 1}], head_gpus=0):
        alive = [n for n in ray.nodes() if n["Alive"]]
        assert len(alive) == 2
        ids = {("gpu" if n["Resources"].get("GPU", 0) >= 1 else "cpu"): n["NodeID"] for n in alive}
        assert set(ids) == {"cpu", "gpu"}
        yield ids


def _spec(model: Path, data: Path, out: Path, device: str) -> dict[str, Any]:
    return {"model": str(model), "task": "fidelity", "data": {"path": str(data), "options": {}},
            "device": device, "repeats": 1, "seed": 0, "split": "all", "out": str(out)}  # fmt: skip


def test_a_gpu_evaluation_is_only_placed_on_the_node_with_a_gpu(
    two_nodes: dict[str, str], tiny_model: Path, texts: Path, tmp_path: Path
) -> None:
    from frugalml.search.engines.ray import RayEngine

    engine = RayEngine(max_parallel=4, retries=0).start()
    jobs = []
    for i in range(3):
        spec = _spec(tiny_model, texts, tmp_path / f"g{i}", "cuda")
        res = Resources.for_spec(spec, None)
        assert res.num_gpus == 1
        jobs.append(("gpu", engine.submit(spec, tmp_path, res)))
        spec = _spec(tiny_model, texts, tmp_path / f"c{i}", "cpu")
        jobs.append(("cpu", engine.submit(spec, tmp_path, Resources.for_spec(spec, None))))
    placed: dict[str, set[str]] = {"gpu": set(), "cpu": set()}
    for kind, job in jobs:
        try:
            job.collect([])
        except CandidateFailed:
            assert kind == "gpu"  # no CUDA here: the simulated GPU node cannot run it
        placed[kind].add(job.placement["node_id"])
    assert placed["gpu"] == {two_nodes["gpu"]}  # never on the node without a GPU resource
    assert placed["cpu"] <= set(two_nodes.values())
    engine.close()


def test_each_candidate_is_timed_against_the_original_on_its_own_node(
    two_nodes: dict[str, str], tiny_model: Path, texts: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    tiers = {"convert": [(OnnxExport(),), (OnnxExport(), QuantizeDynamic())]}
    res = frugalml.optimize(
        tiny_model, "fidelity", texts, out=out, ledger=f"sqlite:///{tmp_path / 'l.db'}",
        tiers=tiers, repeats=1, runtime_variants=0, max_quality_drop=100.0, engine="ray",
        max_parallel=2,
    )  # fmt: skip
    baseline_nodes = {
        json.loads(p.read_text())["node_id"] for p in (out / ".work").glob("c00*.placement.json")
    }
    assert baseline_nodes == set(two_nodes.values())  # the original timed on both nodes
    for r in res.candidates[1:]:
        assert r["status"] == "ok"
        assert r["node_id"] in baseline_nodes
        assert r["node_baseline"]["node_id"] == r["node_id"]
        assert r["cost_ratio"] == pytest.approx(
            r["node_baseline"]["cost_usd_per_1m"] / r["cost_usd_per_1m"]
        )
