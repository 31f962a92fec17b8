"""``optimize --engine ray`` on a real single-node Ray cluster: candidates run as Ray tasks in
worker processes (not the driver), every run lands in the PostgreSQL ledger exactly once,
where it ran is recorded, and a Ray worker killed mid-candidate fails only that candidate."""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import frugalml
from frugalml.ledger import Ledger
from frugalml.passes import OnnxExport, QuantizeDynamic

pytestmark = pytest.mark.timeout(600)


def _search(model: Path, data: Path, out: Path, ledger: str, **kw: Any) -> Any:
    return frugalml.optimize(
        model, "fidelity", data, out=out, ledger=ledger, repeats=1, runtime_variants=0,
        max_quality_drop=100.0, engine="ray", **kw,
    )  # fmt: skip


def test_candidates_run_in_ray_workers_and_land_in_the_ledger_once(
    ray_local: Any, tiny_model: Path, texts: Path, tmp_path: Path, postgres_url: str
) -> None:
    tiers = {"convert": [(OnnxExport(),), (OnnxExport(), QuantizeDynamic())]}
    res = _search(tiny_model, texts, tmp_path / "out", postgres_url, tiers=tiers, max_parallel=2)
    node = ray_local.get_runtime_context().get_node_id()
    assert [r["status"] for r in res.candidates] == ["ok", "ok", "ok"]
    for r in res.candidates:
        assert r["worker_pid"] != os.getpid()  # a Ray worker process, not the driver
        assert r["node_id"] == node and r["hardware"]["hostname"] == r["host"]
        assert r["engine_overhead_s"] >= 0.0
    windows = sorted(tuple(r["eval_window"]) for r in res.candidates)
    # --max-parallel 2 on one node: still one timed evaluation at a time there, so no
    # candidate is timed while another competes for the same cores
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(windows))
    for r in res.candidates[1:]:  # each ratio is against the original timed on its node
        assert r["node_baseline"]["node_id"] == r["node_id"]
        assert r["cost_ratio"] == pytest.approx(
            res.baseline["cost_usd_per_1m"] / r["cost_usd_per_1m"]
        )
    with Ledger(postgres_url) as book:
        cands = book.runs(kind="candidate", parent_id=res.run_id)
        every = book.runs()
    ids = Counter(r.id for r in every)
    assert all(n == 1 for n in ids.values())
    assert sorted(r.name.split()[0] for r in cands) == ["c00", "c01", "c02"]
    assert {r.id for r in cands} == {r["run_id"] for r in res.candidates}
    for run in cands:  # `frugal show` tells where each ran
        assert run.environment["node"]["node_id"] == node
        assert run.usage is not None and run.usage.cpu_s > 0


def test_a_ray_worker_killed_mid_candidate_fails_it_and_the_search_finishes(
    ray_local: Any, tiny_model: Path, texts: Path, tmp_path: Path, postgres_url: str
) -> None:
    """c01's saved folder gets its manifest swapped for a FIFO before its evaluation starts,
    so the evaluation blocks reading it (deterministic, whatever the machine's speed); each
    Ray worker that picks the task up (Ray retries once) is SIGKILLed."""
    out = tmp_path / "out"
    work = out / ".work"
    tiers = {"convert": [(OnnxExport(),), (OnnxExport(), QuantizeDynamic())]}
    killed: list[int] = []
    fifo = work / "cands" / "c01" / "frugal.json"
    stop = threading.Event()

    def killer() -> None:
        placement = work / "c01.placement.json"
        while not stop.is_set():
            with contextlib.suppress(OSError, ValueError, KeyError):
                pid = json.loads(placement.read_text())["pid"]
                if pid not in killed:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            time.sleep(0.05)

    def listener(event: str, info: dict[str, Any]) -> None:
        cand = info.get("candidate")
        if event == "phase" and info.get("text") == "evaluating" and cand.id == "c01":
            fifo.unlink()
            os.mkfifo(fifo)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        res = _search(tiny_model, texts, out, postgres_url, tiers=tiers, listener=listener)
    finally:
        stop.set()
        thread.join()
        _release_readers(fifo)
    by_id = {r["id"]: r for r in res.candidates}
    assert by_id["c01"]["status"] == "failed"
    assert "Ray worker" in by_id["c01"]["error"] and "2 attempt(s)" in by_id["c01"]["error"]
    assert len(killed) == 2  # the first try and Ray's one retry
    assert by_id["c00"]["status"] == by_id["c02"]["status"] == "ok"
    assert res.stop_reason == "completed"
    with Ledger(postgres_url) as book:
        cands = {r.name.split()[0]: r for r in book.runs(kind="candidate")}
    assert sorted(cands) == ["c00", "c01", "c02"]  # nothing recorded is lost
    assert cands["c01"].status == "failed" and cands["c02"].status == "finished"


def test_a_gpu_candidate_on_a_cluster_without_gpus_fails_clearly(
    ray_local: Any, tiny_model: Path, texts: Path, tmp_path: Path
) -> None:
    from frugalml.errors import CandidateFailed
    from frugalml.search.engines import Resources
    from frugalml.search.engines.ray import RayEngine

    engine = RayEngine().start()
    spec = {"model": str(tiny_model), "task": "fidelity", "device": "cuda",
            "data": {"path": str(texts), "options": {}}, "out": str(tmp_path / "g")}  # fmt: skip
    with pytest.raises(CandidateFailed, match=r"no node of the Ray cluster has .*1 GPU"):
        engine.submit(spec, tmp_path, Resources.for_spec(spec, None))  # never queued forever


def _release_readers(fifo: Path) -> None:
    """Let the evaluations still blocked opening the FIFO (their Ray worker is gone) go."""
    for _ in range(50):
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as e:
            if e.errno in (errno.ENXIO, errno.ENOENT):  # no reader left
                return
            raise
        os.close(fd)
        time.sleep(0.1)


def test_placement_is_recorded_by_track_inside_a_ray_task(
    ray_local: Any, tmp_path: Path, cli: Any
) -> None:
    """``frugalml.track`` inside a Ray task records the node it ran on (the core reads Ray's
    context only because Ray is already imported there), and ``frugal runs`` shows it."""
    ledger = f"sqlite:///{tmp_path / 'l.db'}"

    @ray_local.remote(num_cpus=1)
    def work() -> tuple[str, str, int]:
        with frugalml.track("in ray", ledger=ledger) as run:
            sum(range(1000))
        return run.id, ray_local.get_runtime_context().get_node_id(), os.getpid()

    run_id, node, pid = ray_local.get(work.remote())
    assert pid != os.getpid()
    with Ledger(ledger) as book:
        rec = book.get(run_id)
    assert rec.environment["node"]["node_id"] == node
    assert rec.environment["node"]["host"] == rec.hardware.hostname
    listed = cli("runs", "--ledger", ledger, env={"COLUMNS": "200"})
    assert listed.returncode == 0 and "where" in listed.stdout
    assert f"{rec.hardware.hostname} node {node[:8]}" in listed.stdout


def test_track_without_ray_records_no_node(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys, frugalml\n"
        f"with frugalml.track('plain', ledger='sqlite:///{tmp_path / 'l.db'}') as r: pass\n"
        "print(r.id, 'ray' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True).stdout.split()  # fmt: skip
    assert out[1] == "False"  # the core never imports Ray
    with Ledger(f"sqlite:///{tmp_path / 'l.db'}") as book:
        assert "node" not in book.get(out[0]).environment
