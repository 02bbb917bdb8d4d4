"""A real multi-node Ray cluster on this machine, for the ``ray`` tests.

``ray.cluster_utils.Cluster`` starts a head node and worker nodes as separate sets of processes
(a GCS and a raylet each), all on this machine: tasks run in the worker nodes' worker processes, and
``remove_node`` kills a node the way a lost machine would. The head gets no CPUs, so every run lands on a
worker node (and can be killed with it); each worker node has one CPU, as this machine has two cores,
and a small object store (runs return small results). No dashboard.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

OBJECT_STORE = 80 * 2**20  # bytes per node; Ray's minimum is 75 MiB


def unavailable_reason() -> str | None:
    """Why no Ray cluster can start here, or ``None``."""
    try:
        import ray
        import ray.cluster_utils  # noqa: F401
    except ImportError:
        return "ray is not installed (pip install -e '.[ray]'; the dev extra includes it)"
    return None


@dataclass
class RayTestCluster:
    """The running cluster: its address, and the worker nodes that can be removed and added."""

    cluster: Any
    address: str
    start_seconds: float
    workers: list = field(default_factory=list)

    def add_worker(self, **resources: Any) -> Any:
        node = self.cluster.add_node(num_cpus=resources.pop("num_cpus", 1), object_store_memory=OBJECT_STORE,
                                     **resources)
        self.workers.append(node)
        self.cluster.wait_for_nodes()
        return node

    def remove_worker(self, node: Any) -> None:
        """Kill every process of a worker node at once (no graceful shutdown: a lost machine)."""
        self.cluster.remove_node(node, allow_graceful=False)
        self.workers.remove(node)

    def worker_with_id(self, node_id: str) -> Any:
        return next((n for n in self.workers if n.node_id == node_id), None)

    def alive_node_ids(self) -> set[str]:
        import ray

        return {n["NodeID"] for n in ray.nodes() if n["Alive"]}


@contextlib.contextmanager
def ray_test_cluster(n_workers: int = 2, num_gpus_per_worker: int = 0) -> Iterator[RayTestCluster]:
    """Start a head and ``n_workers`` worker nodes, connect this process as a driver; stop all after."""
    import signal

    import ray
    from ray.cluster_utils import Cluster

    sigterm = signal.getsignal(signal.SIGTERM)  # ray.init installs its own and leaves it there
    t0 = time.perf_counter()
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "object_store_memory": OBJECT_STORE, "include_dashboard": False,
    })
    handle = RayTestCluster(cluster, cluster.address, 0.0)
    try:
        for _ in range(n_workers):
            handle.add_worker(num_gpus=num_gpus_per_worker)
        ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
        handle.start_seconds = time.perf_counter() - t0
        yield handle
    finally:
        ray.shutdown()
        cluster.shutdown()
        signal.signal(signal.SIGTERM, sigterm)
