"""Simulated multi-node Ray clusters for the scale tests (``ray.cluster_utils.Cluster``, every
node a set of processes on this machine)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

SMALL_STORE = 80 * 2**20  # each simulated node's object store: the machine is shared


@contextlib.contextmanager
def simulated_cluster(
    ray: Any, head_cpus: int, nodes: list[dict[str, Any]], head_gpus: int | None = None
) -> Iterator[tuple[Any, list[Any]]]:
    """A head with ``head_cpus`` (and ``head_gpus``) and one node per ``add_node`` keyword
    dict, each with a small object store, this process connected to it; yields (cluster, the
    added nodes) and shuts both down on exit."""
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    head: dict[str, Any] = {"num_cpus": head_cpus, "object_store_memory": SMALL_STORE,
                            "include_dashboard": False}  # fmt: skip
    if head_gpus is not None:
        head["num_gpus"] = head_gpus
    cluster = Cluster(initialize_head=True, head_node_args=head)
    added = [cluster.add_node(object_store_memory=SMALL_STORE, **kw) for kw in nodes]
    ray.init(address=cluster.address, log_to_driver=False)
    cluster.wait_for_nodes()
    try:
        yield cluster, added
    finally:
        ray.shutdown()
        cluster.shutdown()
