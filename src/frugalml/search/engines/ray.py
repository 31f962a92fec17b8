"""The ``ray`` engine: each candidate evaluation is a Ray task with declared resources.

A task declares the CPUs (one per evaluation thread), the GPU (one when the evaluation runs on
CUDA, so it only goes to a node with a ``GPU`` resource) and the memory (``--max-memory-mb``)
it needs. Inside the task the evaluation runs exactly as with the local engine: in a fresh
process forked from a preloaded server (``worker.Evaluator``, one per Ray worker process), so
peak memory, thread settings and crashes stay the candidate's own. The task returns the
result's files (``out.json`` + ``out.npz``) as bytes, the evaluating process's CPU and peak
RSS, and where it ran (``placement``: Ray node id, host, pid, hardware).

Same conditions as the local engine, so a candidate timed on Ray is comparable with one timed
locally: Ray renices its workers (``worker_niceness``: +15 over the raylet), so on a machine
with any other work a Ray candidate got a fraction of a core the local one got whole; each
task here runs in a worker started with ``RAY_worker_niceness=0`` (the raylet's niceness: on
one machine, the search's). And Ray sets ``OMP_NUM_THREADS`` to the task's CPUs; the
evaluation server starts instead with the search process's ``THREAD_ENV`` (set or unset as
there), as the local engine's does. ``Outcome`` reports both (``nice``, ``thread_env``).

A node that declares its instance type (``FRUGAL_INSTANCE`` in the environment ``ray start``
ran with there) prices the evaluations it runs at that instance, whatever ``--instance`` the
search was given; the others at the search's.

A Ray worker that dies mid-candidate (killed, OOM-killed, its node gone) is retried
``retries`` times by Ray (``max_retries``), then the candidate is recorded as failed and the
search goes on. Inputs (the candidate's folder, the data, the reference outputs) are read from
the paths in the spec when the node sees them (one machine, or a shared filesystem);
``ship=True`` sends them through Ray's object store instead (default: when the cluster has a
node on another host). Ray is imported only when this engine is chosen.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import tarfile
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from frugalml.errors import BadInput, CandidateFailed
from frugalml.search.engines import Resources
from frugalml.search.worker import Evaluator, Outcome, run_isolated, thread_env

_EVALUATOR: Evaluator | None = None  # per Ray worker process, started by its first task


def _ray() -> Any:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError:
        raise BadInput("--engine ray needs Ray", hint="pip install 'frugalml[ray]'") from None
    return ray


def _placement() -> dict[str, Any]:
    """Where this process runs: Ray node id, host, pid, the machine's fingerprint and the
    instance type the node declares (``FRUGAL_INSTANCE``; None: it declares none)."""
    import ray

    from frugalml.measure.hardware import hardware
    from frugalml.measure.track import node_instance

    return {
        "node_id": ray.get_runtime_context().get_node_id(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "hardware": hardware().to_dict(),
        "instance": node_instance(),
    }


def _unpack(bundle: bytes, into: Path) -> None:
    with tarfile.open(fileobj=io.BytesIO(bundle)) as tar:
        tar.extractall(into, filter="data")


def evaluate_task(
    spec: dict[str, Any],
    limit: int | None,
    bundle: bytes | None,
    placement_path: str | None,
    threads_env: dict[str, str | None] | None = None,
) -> dict[str, Any]:
    """The Ray task: evaluate ``spec`` in a forked process on this node; what it returns is
    plain data (figures, the result's bytes, placement, the process's usage). ``threads_env``:
    the driver's ``THREAD_ENV``, which the evaluation server starts with (not Ray's)."""
    global _EVALUATOR
    t0 = time.perf_counter()
    placement = {**_placement(), "started_at": time.time()}
    if placement_path and Path(placement_path).parent.is_dir():  # seen when the node shares it
        Path(placement_path).write_text(json.dumps(placement))
    spec = dict(spec)
    if placement["instance"]:  # the node's own price, not the driver's --instance
        from frugalml.measure.track import price_here

        try:  # priced with this node's catalog; the driver needs no entry for it
            placement["price"] = asdict(price_here(None, spec.get("region")))
        except BadInput as e:
            placement["ended_at"] = time.time()
            return {"placement": placement, "ok": False, "error": str(e), "outcome": None,
                    "inside_s": time.perf_counter() - t0}  # fmt: skip
        spec["instance"] = placement["instance"]
    tmp = Path(tempfile.mkdtemp(prefix="frugal-ray-"))
    try:
        if bundle is not None:
            _unpack(bundle, tmp / "in")
            spec["model"] = _local(spec["model"], tmp / "in" / "model")
            spec["data"] = {**spec["data"], "path": str(tmp / "in" / "data.jsonl")}
            if spec.get("reference"):
                spec["reference"] = str(tmp / "in" / "reference.npy")
        spec["out"] = str(tmp / "out")
        if _EVALUATOR is not None and _EVALUATOR.env != threads_env:
            _EVALUATOR.close()  # another search's settings: a server started with these
            _EVALUATOR = None
        if _EVALUATOR is None:
            _EVALUATOR = Evaluator(env=threads_env)
        used: list[Outcome] = []
        reply: dict[str, Any] = {"placement": placement}
        try:
            run_isolated(spec, tmp, evaluator=_EVALUATOR, memory_limit_bytes=limit, used=used)
            reply.update(
                ok=True,
                json=(tmp / "out.json").read_text(),
                npz=(tmp / "out.npz").read_bytes(),
            )
        except CandidateFailed as e:
            reply.update(ok=False, error=str(e))
        reply["outcome"] = asdict(used[-1]) if used else None
        reply["inside_s"] = time.perf_counter() - t0
        reply["placement"]["ended_at"] = time.time()
        return reply
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _local(model: str, shipped: Path) -> str:
    return str(shipped) if shipped.exists() else model


@dataclass(eq=False)  # identity: jobs are dict keys
class RayJob:
    """One submitted evaluation: ``collect`` its result; ``placement`` once it ran."""

    ref: Any
    out: Path
    placement_path: Path
    attempts: int
    submitted: float = field(default_factory=time.perf_counter)
    ready_at: float | None = None
    placement: dict[str, Any] = field(default_factory=dict)
    node: str | None = None  # the node this engine reserved for it (one timed eval per node)
    overhead_s: float | None = None  # scheduling + transfer: driver's wall minus the task's

    def collect(self, used: list[Outcome] | None = None) -> Any:
        from frugalml.search.evaluate import EvalResult

        ray = _ray()
        try:
            reply = ray.get(self.ref)
        except ray.exceptions.RayError as e:
            self._placement_from_file()
            kind = type(e).__name__
            raise CandidateFailed(
                f"the Ray worker evaluating it died ({kind}) after {self.attempts} attempt(s)"
            ) from None
        self.ready_at = self.ready_at or time.perf_counter()
        self.placement = reply["placement"]
        self.overhead_s = max(0.0, self.ready_at - self.submitted - reply["inside_s"])
        if used is not None and reply.get("outcome"):
            used.append(Outcome(**reply["outcome"]))
        if not reply["ok"]:
            raise CandidateFailed(reply["error"])
        self.out.with_suffix(".json").write_text(reply["json"])
        self.out.with_suffix(".npz").write_bytes(reply["npz"])
        return EvalResult.read(self.out)

    def _placement_from_file(self) -> None:
        try:
            self.placement = json.loads(self.placement_path.read_text())
        except (OSError, ValueError):
            self.placement = {}


class RayEngine:
    """Candidates as Ray tasks on the cluster at ``address`` (None: this process's Ray if it
    is initialised, else a local one; ``auto``: the running cluster; ``ray://…``: a client)."""

    name = "ray"

    def __init__(
        self,
        *,
        address: str | None = None,
        max_parallel: int = 1,
        retries: int = 1,
        ship: bool | None = None,
        per_node: int | None = 1,
    ) -> None:
        _ray()  # a clear error before any work when Ray is missing
        self.address = address
        self.max_parallel = max_parallel
        self.retries = retries
        self.ship = ship
        # timed evaluations at once on one node (None: as many as its resources allow); 1 by
        # default, so no candidate is timed while another competes for the same machine
        self.per_node = per_node
        self._busy: dict[str, int] = {}
        self._owns = False
        self._remote: Any = None

    def start(self) -> RayEngine:
        from frugalml.measure.track import ray_address

        ray = _ray()
        if not ray.is_initialized():
            try:
                ray.init(address=ray_address(self.address), include_dashboard=False,
                         log_to_driver=False)  # fmt: skip
            except (ConnectionError, ValueError, RuntimeError) as e:
                raise BadInput(f"cannot connect to Ray at {self.address or 'a new local cluster'}: "
                               f"{str(e).splitlines()[0][:200]}") from None  # fmt: skip
            self._owns = True
        self._remote = ray.remote(evaluate_task)
        if self.ship is None:
            here = ray.util.get_node_ip_address()
            self.ship = any(n["NodeManagerAddress"] != here for n in ray.nodes() if n["Alive"])
        return self

    def close(self) -> None:
        if self._owns:
            _ray().shutdown()
            self._owns = False

    def nodes(self) -> list[dict[str, Any]]:
        ray = _ray()
        return [
            {
                "node_id": n["NodeID"],
                "host": n["NodeManagerHostname"],
                "resources": dict(n.get("Resources", {})),
            }
            for n in ray.nodes()
            if n["Alive"]
        ]

    def _fits(self, node: dict[str, Any], resources: Resources) -> bool:
        res = node.get("resources", {})
        return bool(
            res.get("CPU", 0) >= resources.num_cpus and res.get("GPU", 0) >= resources.num_gpus
        )

    def free_node(self, resources: Resources) -> str | None:
        """A node that can run ``resources`` and has no timed evaluation slot left taken."""
        for node in self.nodes():
            if self._fits(node, resources) and (
                self.per_node is None or self._busy.get(node["node_id"], 0) < self.per_node
            ):
                return str(node["node_id"])
        return None

    def is_free(self, node_id: str) -> bool:
        return self.per_node is None or self._busy.get(node_id, 0) < self.per_node

    def has_room(self, resources: Resources) -> bool:
        return self.per_node is None or self.free_node(resources) is not None

    def submit(
        self, spec: dict[str, Any], work: Path, resources: Resources, *, tag: str = ""
    ) -> RayJob:
        ray = _ray()
        if self._remote is None:
            self.start()
        if not any(self._fits(n, resources) for n in self.nodes()):
            raise CandidateFailed(
                f"no node of the Ray cluster has {resources.num_cpus:g} CPU(s)"
                + (f" and {resources.num_gpus:g} GPU(s)" if resources.num_gpus else "")
            )
        node = resources.node_id
        if node is None and self.per_node is not None:
            node = self.free_node(resources)  # None: every node busy, let Ray queue it
        out = Path(spec["out"])
        for suffix in (".json", ".npz", ".error.json"):
            out.with_suffix(suffix).unlink(missing_ok=True)
        placement_path = work / (out.name + ".placement.json")
        placement_path.unlink(missing_ok=True)
        options: dict[str, Any] = {
            "num_cpus": resources.num_cpus,
            "num_gpus": resources.num_gpus,
            "max_retries": self.retries,
            "retry_exceptions": False,
            "name": f"frugal-eval {tag or out.name}",
            # a worker at the raylet's niceness, not Ray's default +15 (module docstring)
            "runtime_env": {"env_vars": {"RAY_worker_niceness": "0"}},
        }
        if resources.memory_bytes:
            options["memory"] = resources.memory_bytes
        if node:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            # a baseline must run on its node; a candidate may move if its node goes away
            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(
                node, soft=resources.node_id is None
            )
            self._busy[node] = self._busy.get(node, 0) + 1
        bundle = ray.put(_bundle(spec)) if self.ship else None
        ref = self._remote.options(**options).remote(
            spec, resources.memory_bytes, bundle, str(placement_path), thread_env()
        )
        return RayJob(ref, out, placement_path, attempts=1 + self.retries, node=node)

    def wait(self, jobs: list[Any]) -> Any:
        ray = _ray()
        ready, _ = ray.wait([j.ref for j in jobs], num_returns=1)
        job = next(j for j in jobs if j.ref == ready[0])
        job.ready_at = time.perf_counter()
        if job.node:
            self._busy[job.node] -= 1
            job.node = None
        return job


def _bundle(spec: dict[str, Any]) -> bytes:
    """The evaluation's inputs as one tar (model folder when it is one, data, reference)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        if Path(spec["model"]).is_dir():
            tar.add(spec["model"], arcname="model")
        tar.add(spec["data"]["path"], arcname="data.jsonl")
        if spec.get("reference"):
            tar.add(spec["reference"], arcname="reference.npy")
    return buf.getvalue()
