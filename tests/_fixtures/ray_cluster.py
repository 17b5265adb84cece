"""One real Ray cluster per test session: ``ray.cluster_utils.Cluster`` with a head that hosts no Work
and two worker nodes (one labelled spot), dashboard off, small object stores, node health checks
tuned so that a removed node is declared dead in about 2 s (14 s by default).

Tests that remove a node add their own first (``ray_cluster.add_node``), so the next test finds the
cluster as it was."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

OBJECT_STORE = 80 * 2**20
HEALTH = {
    "health_check_initial_delay_ms": 0,
    "health_check_period_ms": 500,
    "health_check_timeout_ms": 500,
    "health_check_failure_threshold": 3,
}


class RayCluster:
    def __init__(self) -> None:
        from ray.cluster_utils import Cluster

        self.cluster = Cluster(
            initialize_head=True,
            connect=False,
            head_node_args={
                "num_cpus": 0,
                "include_dashboard": False,
                "object_store_memory": OBJECT_STORE,
                "_system_config": HEALTH,
            },
        )
        self.address = self.cluster.address
        self.root = tempfile.mkdtemp(prefix="lk-ray-nodes-")
        self._n = 0
        self.workers = [self.add_node(num_cpus=2, resources={"lk_node_a": 1})]
        self.workers.append(
            self.add_node(num_cpus=2, resources={"lk_node_b": 1}, labels={"ray.io/market-type": "spot"})
        )

    def add_node(self, **kw: Any) -> Any:
        """A node with a disk of its own (``LK_WORK_DIR``): like a machine of a cloud, it shares none of
        its Works' folders with the others, so a Work relaunched elsewhere has only its Paths."""
        self._n += 1
        disk = os.path.join(self.root, f"node-{self._n}")
        os.makedirs(disk)
        node = self.cluster.add_node(object_store_memory=OBJECT_STORE, env_vars={"LK_WORK_DIR": disk}, **kw)
        self.cluster.wait_for_nodes()
        return node

    def remove_node(self, node: Any) -> None:
        self.cluster.remove_node(node, allow_graceful=False)

    def config(self, **extra: Any) -> dict[str, Any]:
        """The ``[executors.ray]`` table for this cluster."""
        return {"address": self.address, "namespace": "lk-tests", "max_interruptions": 3, **extra}

    def toml(self, **extra: Any) -> str:
        lines = ["[executors.ray]"]
        for key, value in self.config(**extra).items():
            lines.append(
                f"{key} = {value!r}".replace("'", '"')
                if not isinstance(value, bool)
                else f"{key} = {str(value).lower()}"
            )
        return "\n".join(lines) + "\n"

    def shutdown(self) -> None:
        self.cluster.shutdown()


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    pytest.importorskip(
        "ray", reason="the ray executor's tests need Ray: pip install 'lightning-kernel[ray]'"
    )
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    cluster = RayCluster()
    try:
        yield cluster
    finally:
        import ray

        ray.shutdown()
        cluster.shutdown()
