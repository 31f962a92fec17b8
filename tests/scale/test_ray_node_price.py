"""Cost uses the instance price of the Ray node a run ran on, not the driver's.

Two simulated nodes (``ray.cluster_utils.Cluster``, both on this machine), each declaring its
instance type the way a real node does: ``FRUGAL_INSTANCE`` in the environment its raylet
(``ray start``) runs with. The two instance types and their prices are set in a config file
(``FRUGAL_CONFIG``) the nodes read and the driver does not (a node prices with its own
catalog), so every expected figure is computed here by hand: seconds x the price set below /
3600. The head has no CPUs, so every task runs on one of the two nodes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from raycluster import simulated_cluster

import frugalml
from frugalml.ledger import Ledger
from frugalml.passes import OnnxExport, QuantizeDynamic

pytestmark = pytest.mark.timeout(600)
PRICES = {"test/node-a": 1.25, "test/node-b": 7.5}  # $/h, set in the config file below
DRIVER = "aws/c7i.2xlarge"  # the driver's --instance: never what a node's runs are priced at


@pytest.fixture(scope="module")
def nodes(ray_module: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """{node id: the instance type that node declares}."""
    ray = ray_module
    cfg = tmp_path_factory.mktemp("cfg") / "config.toml"
    cfg.write_text("".join(
        f'[instances."{name}"]\nusd_per_hour = {usd}\nsource = "test"\n\n'
        for name, usd in PRICES.items()
    ))  # fmt: skip
    env = {"FRUGAL_CONFIG": str(cfg), "OMP_NUM_THREADS": "1"}
    nodes = [{"num_cpus": 1, "env_vars": {**env, "FRUGAL_INSTANCE": name}} for name in PRICES]
    with simulated_cluster(ray, 0, nodes) as (_cluster, added):
        yield {node.node_id: name for node, name in zip(added, PRICES, strict=True)}


def _on(node_id: str) -> Any:
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return NodeAffinitySchedulingStrategy(node_id, soft=False)


def _priced_by_hand(usage: Any, usd_per_hour: float) -> None:
    assert usage.usd_per_hour == usd_per_hour
    assert usage.instance_cost_usd == pytest.approx(usage.wall_s * usd_per_hour / 3600, rel=1e-9)
    assert usage.cost_usd == pytest.approx(usage.instance_cost_usd, rel=1e-9)


def test_track_in_a_ray_task_is_priced_at_its_nodes_instance(
    nodes: dict[str, str], tmp_path: Path
) -> None:
    ray = pytest.importorskip("ray")
    ledger = f"sqlite:///{tmp_path / 'l.db'}"

    @ray.remote(num_cpus=1)
    def work(instance: str | None) -> tuple[str, str]:
        import time

        with frugalml.track("in ray", ledger=ledger, instance=instance) as run:
            time.sleep(0.3)
        return run.id, ray.get_runtime_context().get_node_id()

    # on each node: a run naming no instance, and one naming an instance itself (that wins)
    asked = [(node_id, instance) for node_id in nodes for instance in (None, DRIVER)]
    got = [ray.get(work.options(scheduling_strategy=_on(n)).remote(i)) for n, i in asked]
    with Ledger(ledger) as book:
        runs = [book.get(run_id) for run_id, _ in got]
    for (node_id, instance), (_, ran_on), rec in zip(asked, got, runs, strict=True):
        assert ran_on == node_id and rec.environment["node"]["node_id"] == node_id
        if instance is None:
            assert rec.usage.instance == nodes[node_id]
            _priced_by_hand(rec.usage, PRICES[nodes[node_id]])
        else:
            assert rec.usage.instance == DRIVER


def test_frugal_measure_from_a_ray_task_is_priced_at_its_nodes_instance(
    nodes: dict[str, str], tmp_path: Path
) -> None:
    ray = pytest.importorskip("ray")
    ledger = f"sqlite:///{tmp_path / 'l.db'}"

    @ray.remote(num_cpus=1)
    def measure(name: str) -> int:
        cmd = [sys.executable, "-m", "frugalml", "measure", "--ledger", ledger, "--name", name,
               "--", sys.executable, "-c", "import time; time.sleep(0.2)"]  # fmt: skip
        return subprocess.run(cmd, capture_output=True, check=False).returncode

    codes = {
        nid: ray.get(measure.options(scheduling_strategy=_on(nid)).remote(nid)) for nid in nodes
    }
    assert set(codes.values()) == {0}
    with Ledger(ledger) as book:
        runs = {r.name: r for r in book.runs(kind="command")}
    assert set(runs) == set(nodes)
    for node_id, run in runs.items():
        assert run.usage.instance == nodes[node_id]
        _priced_by_hand(run.usage, PRICES[nodes[node_id]])
        assert run.environment["node"]["raylet_pid"]  # measured under Ray, from its env


def test_candidates_are_priced_at_the_instance_of_the_node_they_ran_on(
    nodes: dict[str, str], tiny_model: Path, texts: Path, tmp_path: Path
) -> None:
    ledger = f"sqlite:///{tmp_path / 'l.db'}"
    tiers = {"convert": [(OnnxExport(),), (OnnxExport(), QuantizeDynamic())]}
    res = frugalml.optimize(
        tiny_model, "fidelity", texts, out=tmp_path / "out", ledger=ledger, tiers=tiers,
        repeats=1, runtime_variants=0, max_quality_drop=100.0, engine="ray", max_parallel=2,
        instance=DRIVER,
    )  # fmt: skip
    assert [r["status"] for r in res.candidates] == ["ok", "ok", "ok"]
    for r in res.candidates:
        usd = PRICES[nodes[r["node_id"]]]
        assert r["instance"] == nodes[r["node_id"]] and r["usd_per_hour"] == usd
        assert r["cost_usd_per_1m"] == pytest.approx(1e6 / r["throughput_per_s"] / 3600 * usd)
    with Ledger(ledger) as book:
        cands = {r.id: r for r in book.runs(kind="candidate")}
        search = book.get(res.run_id)
    assert search.usage.instance == DRIVER  # the driver's own run: the driver's instance
    for r in res.candidates:
        run = cands[r["run_id"]]
        assert run.usage.instance == nodes[r["node_id"]]
        _priced_by_hand(run.usage, PRICES[nodes[r["node_id"]]])
    placed = [
        json.loads(p.read_text()) for p in (tmp_path / "out" / ".work").glob("*.placement.json")
    ]
    assert {p["instance"] for p in placed} <= set(PRICES)


def test_trials_are_priced_at_the_instance_of_the_node_they_ran_on(
    nodes: dict[str, str], tmp_path: Path
) -> None:
    from frugalml.data import load_data, stdlib_sentences
    from frugalml.train import FinetuneConfig, TuneConfig, tune
    from tinymodels import tiny_bert

    model = tiny_bert(tmp_path / "m", layers=1)
    rows = [f"{i % 2} {t}" for i, t in enumerate(stdlib_sentences(40, seed=1))]
    (tmp_path / "train.txt").write_text("\n".join(rows) + "\n")
    data = load_data(tmp_path / "train.txt")
    ledger = f"sqlite:///{tmp_path / 'l.db'}"
    cfg = TuneConfig(
        trials=2, sampler="random", pruner="none", recipes=("full",), batch_sizes=(16,),
        base=FinetuneConfig(eval_mode="sync", evals_per_run=1, max_length=16, epochs=1.0),
    )  # fmt: skip
    result = tune(model, data, data, cfg, ledger=ledger, engine="ray", max_parallel=2,
                  instance=DRIVER)  # fmt: skip
    with Ledger(ledger) as book:
        trials = book.runs(kind="trial")
        study = book.get(result.study.run_id)
    assert len(trials) == 2 and study.usage.instance == DRIVER
    for run in trials:
        node = run.environment["node"]["node_id"]
        assert run.usage.instance == nodes[node]
        _priced_by_hand(run.usage, PRICES[nodes[node]])
