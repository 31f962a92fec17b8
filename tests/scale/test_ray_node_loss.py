"""A node that disappears mid-search or mid-study (``Cluster.remove_node``): its candidate is
retried on another node or recorded as failed, its trial is recorded as failed, the search or
study finishes, and every run is in the ledger once.

Two simulated worker nodes (1 CPU each) and a head with no CPUs, so every evaluation runs on a
node the test may remove. The candidate to lose (c01) blocks reading its manifest, swapped for
a FIFO before its evaluation starts, so it is mid-evaluation when its node goes (whatever the
machine's speed)."""

from __future__ import annotations

import errno
import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from raycluster import SMALL_STORE, simulated_cluster

import frugalml
from frugalml.ledger import Ledger
from frugalml.passes import OnnxExport, QuantizeDynamic

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def cluster(ray_module: Any) -> Iterator[Any]:
    nodes = [{"num_cpus": 1}, {"num_cpus": 1}]
    with simulated_cluster(ray_module, 0, nodes) as (c, _added):
        yield c


def _release(fifo: Path) -> None:
    for _ in range(50):
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as e:
            if e.errno in (errno.ENXIO, errno.ENOENT):
                return
            raise
        os.close(fd)
        time.sleep(0.1)


def test_a_node_lost_mid_candidate(
    cluster: Any, tiny_model: Path, texts: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    work = out / ".work"
    fifo = work / "cands" / "c01" / "frugal.json"
    removed: list[str] = []
    saved: dict[str, str] = {}

    def listener(event: str, info: dict[str, Any]) -> None:
        cand = info.get("candidate")
        if event == "phase" and info.get("text") == "evaluating" and cand.id == "c01":
            saved["manifest"] = fifo.read_text()
            fifo.unlink()
            os.mkfifo(fifo)
            _remove_its_node_later(work / "c01.placement.json")

    def _remove_its_node_later(placement: Path) -> None:
        import threading

        def go() -> None:
            while not placement.exists():
                time.sleep(0.05)
            node_id = json.loads(placement.read_text())["node_id"]
            node = next(n for n in cluster.worker_nodes if n.node_id == node_id)
            cluster.remove_node(node)
            removed.append(node_id)
            _release(fifo)  # its orphaned evaluation (and a retry already waiting) go on
            fifo.unlink()
            fifo.write_text(saved["manifest"])

        threading.Thread(target=go, daemon=True).start()

    ledger = f"sqlite:///{tmp_path / 'l.db'}"
    tiers = {"convert": [(OnnxExport(),), (OnnxExport(), QuantizeDynamic())]}
    res = frugalml.optimize(
        tiny_model, "fidelity", texts, out=out, ledger=ledger, tiers=tiers, repeats=1,
        runtime_variants=0, max_quality_drop=100.0, engine="ray", max_parallel=2,
        listener=listener,
    )  # fmt: skip
    assert len(removed) == 1
    by_id = {r["id"]: r for r in res.candidates}
    c01 = by_id["c01"]
    if c01["status"] == "ok":  # Ray retried it on the node that is left
        assert c01["node_id"] != removed[0]
    else:
        assert "Ray worker" in c01["error"] or "node" in c01["error"].lower()
    assert by_id["c00"]["status"] == by_id["c02"]["status"] == "ok"
    assert res.stop_reason == "completed"
    with Ledger(ledger) as book:
        runs = book.runs(kind="candidate")
    assert sorted(r.name.split()[0] for r in runs) == ["c00", "c01", "c02"]
    assert all(n == 1 for n in Counter(r.id for r in runs).values())


def test_a_node_lost_mid_study(cluster: Any, tmp_path: Path) -> None:
    """``tune --engine ray``: two trials at once, one per node; the node of the first trial
    seen running in the ledger is removed. That trial is recorded as failed (in the summary and
    in the ledger, where the dead process left its run ``running``), the other completes, and
    every trial run is in the ledger once."""
    import threading

    from frugalml.data import load_data, stdlib_sentences
    from frugalml.train import FinetuneConfig, TuneConfig, tune
    from frugalml.train.tune_ray import LOST
    from tinymodels import tiny_bert

    while len(cluster.worker_nodes) < 2:  # the test above removed one
        cluster.add_node(num_cpus=1, object_store_memory=SMALL_STORE)
    cluster.wait_for_nodes()
    model = tiny_bert(tmp_path / "m", layers=1)
    rows = [f"{i % 2} {t}" for i, t in enumerate(stdlib_sentences(48, seed=1))]
    (tmp_path / "train.txt").write_text("\n".join(rows) + "\n")
    data = load_data(tmp_path / "train.txt")
    ledger = f"sqlite:///{tmp_path / 'l.db'}"
    removed: list[str] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set() and not removed:
            with Ledger(ledger) as book:
                running = book.runs(kind="trial", status="running")
            for run in running:
                node_id = run.environment.get("node", {}).get("node_id")
                node = next((n for n in cluster.worker_nodes if n.node_id == node_id), None)
                if node is not None:
                    cluster.remove_node(node)
                    removed.append(node_id)
                    return
            time.sleep(0.1)

    cfg = TuneConfig(
        trials=2, sampler="random", pruner="none", recipes=("full",), batch_sizes=(16,),
        base=FinetuneConfig(eval_mode="sync", evals_per_run=1, max_length=16, epochs=100.0),
    )  # fmt: skip
    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        result = tune(model, data, data, cfg, ledger=ledger, engine="ray", max_parallel=2)
    finally:
        stop.set()
        thread.join()
    assert len(removed) == 1
    trials = result.study.trials
    assert sorted(t.state for t in trials) == ["complete", "failed"]
    with Ledger(ledger) as book:
        runs = book.runs(kind="trial")
    assert len(runs) == 2 and all(n == 1 for n in Counter(r.id for r in runs).values())
    by_node = {r.environment["node"]["node_id"]: r for r in runs}
    lost = by_node[removed[0]]
    assert lost.status == "failed" and lost.error == LOST
    assert [r.status for r in runs if r.id != lost.id] == ["finished"]
    assert {t.run_id for t in trials} == {r.id for r in runs}
