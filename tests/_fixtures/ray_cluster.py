"""One real Ray cluster per test session: ``ray.cluster_utils.Cluster`` with a head that hosts no Work
and two worker nodes (one labelled spot), dashboard off, small object stores, node health checks
tuned so that a removed node is declared dead in about 4 s (14 s by default; tighter, a node of a
loaded 2-core machine missed its checks and was declared dead under a test).

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
    "health_check_period_ms": 1000,
    "health_check_timeout_ms": 1000,
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
        self.warm("lk_node_a", "lk_node_b")

    def warm(self, *resources: str) -> None:
        """Run a task on each node that has one of ``resources`` and wait for it: a node just added
        still starts its first Python workers (seconds each on a loaded 2-core machine), and a test
        that needs two nodes at once must not time out on that."""
        import ray

        if not ray.is_initialized():
            ray.init(address=self.address, namespace="lk-tests", log_to_driver=False)

        @ray.remote(num_cpus=0)
        def node() -> str:
            return str(ray.get_runtime_context().get_node_id())

        refs = [node.options(resources={r: 0.001}).remote() for r in resources]
        try:
            ray.get(refs, timeout=300)
        except ray.exceptions.GetTimeoutError:
            raise RuntimeError(
                f"the test's Ray nodes ({', '.join(resources)}) ran no task in 300 s"
            ) from None

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
        """Kill the node's processes (as a machine lost) and wait for the cluster to declare it dead,
        so that nothing after it is placed on a node that is dying."""
        self.cluster.remove_node(node, allow_graceful=False)
        self.cluster.wait_for_nodes()

    def check(self) -> None:
        """Every node this fixture added and did not remove is alive (a node lost to a missed health
        check would fail the next test for a reason of its own)."""
        try:
            self.cluster.wait_for_nodes(timeout=10)
        except TimeoutError:
            raise AssertionError(
                "a node of the test's Ray cluster died without being removed (see the raylet logs "
                f"under {self.cluster.head_node.get_session_dir_path()}/logs)"
            ) from None

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


@pytest.fixture
def ray_cluster(ray_session: RayCluster) -> RayCluster:
    """The session's cluster, checked whole before the test."""
    ray_session.check()
    return ray_session


@pytest.fixture(scope="session")
def ray_session() -> Iterator[RayCluster]:
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
