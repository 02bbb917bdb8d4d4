"""``executor: ray`` on a real multi-node Ray cluster started on this machine (marker ``ray``).

One cluster for the whole module (Ray takes ~10 s to start on two cores): a head without CPUs and two
worker nodes with one CPU each, so every run lands on a worker node, and a test can kill that node.
"""

from __future__ import annotations

import os

import pytest

from tests.integration.ray_cluster import ray_test_cluster, unavailable_reason

pytestmark = [pytest.mark.ray, pytest.mark.skipif(unavailable_reason() is not None,
                                                  reason=unavailable_reason() or "")]


@pytest.fixture(scope="module")
def ray_cluster():
    with ray_test_cluster(n_workers=2, num_gpus_per_worker=1) as cluster:
        yield cluster


def test_the_test_cluster_has_a_head_and_two_worker_nodes_that_run_tasks(ray_cluster):
    import ray

    assert len(ray_cluster.alive_node_ids()) == 3
    assert ray.cluster_resources()["CPU"] == 2

    @ray.remote(num_cpus=1)
    def where() -> tuple[str, int]:
        return ray.get_runtime_context().get_node_id(), os.getpid()

    nodes = {node for node, _ in ray.get([where.remote() for _ in range(4)])}
    assert nodes <= {n.node_id for n in ray_cluster.workers}
    print(f"ray test cluster started in {ray_cluster.start_seconds:.1f} s")
