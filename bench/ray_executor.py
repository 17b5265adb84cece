"""The Ray executor beside a plain Ray actor, in the same run, through `lightning-kernel run app`.

Starts the tests' local cluster (``tests/_fixtures/ray_cluster.py``: a head and two worker nodes) plus
two spare nodes, and per round measures, from ``history --json`` timestamps:

1. Worker start to ``running`` (``work.run_requested`` -> ``work.status_changed`` running): cold, a
   kernel's first Work (the kernel joins the cluster as it starts, as a configured one does); warm,
   a second Work called once the first one's call ended. Baseline: a plain actor's creation until
   its first method call returns (``ray.remote(A).remote()`` then ``ray.get(a.ping.remote())``).
2. Call round trip: 30 trivial sequential calls of that second Work, flow call -> ``succeeded``;
   baseline: a plain actor's method call round trip (``ray.get(a.ping.remote())``).
3. Node loss to ``running`` again: a Work on a spare node, the node removed (``Cluster.remove_node``),
   until the relaunched worker's call is ``running`` on the other spare; beside it, the time until
   the cluster itself marks the node dead (``ray.nodes()``), which bounds it from below.

    python bench/ray_executor.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _fixtures.ray_cluster import RayCluster

CALLS = 30
START_APP = """
from lightning_kernel import LightningApp, LightningFlow, LightningWork, CloudCompute

class Once(LightningWork):
    def __init__(self):
        # its worker starts at its first call, not with the flow
        super().__init__(cloud_compute=CloudCompute("default", executor="ray"), parallel=True, start_with_flow=False)
    def run(self, i):
        pass

class Root(LightningFlow):
    def __init__(self):
        super().__init__()
        self.cold = Once()
        self.warm = Once()
        self.i = 0
    def run(self):
        self.cold.run(0)
        if not self.cold.has_succeeded:
            return
        if self.i < CALLS:
            self.warm.run(self.i)
            if self.warm.has_succeeded and self.warm.status.timestamp:
                self.i += 1
        else:
            self.stop()

app = LightningApp(Root())
"""
LOSS_APP = """
import time
from lightning_kernel import LightningApp, LightningFlow, LightningWork, CloudCompute

class Long(LightningWork):
    def __init__(self):
        super().__init__(cloud_compute=CloudCompute("default", executor="ray", resources={"lk_spare": 1}), parallel=True)
        self.started = 0
    def run(self):
        self.started += 1
        while self.started < 2:
            time.sleep(0.05)

class Root(LightningFlow):
    def __init__(self):
        super().__init__()
        self.w = Long()
    def run(self):
        self.w.run()
        if self.w.has_succeeded:
            self.stop()

app = LightningApp(Root())
"""


def history(folder: Path) -> list[dict[str, Any]]:
    out = subprocess.run(
        [sys.executable, "-m", "lightning_kernel", "history", "latest", "--json"],
        cwd=folder,
        env={**os.environ, "LK_DATA_DIR": str(folder / "data")},
        capture_output=True,
        text=True,
    )
    return (
        [json.loads(line) for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []
    )


def stages(events: list[dict[str, Any]], work: str, stage: str) -> list[float]:
    return [
        e["ts"]
        for e in events
        if e["type"] == "work.status_changed" and e["body"]["work"] == work and e["body"]["stage"] == stage
    ]


def requested(events: list[dict[str, Any]], work: str) -> list[float]:
    return [e["ts"] for e in events if e["type"] == "work.run_requested" and e["body"]["work"] == work]


def kernel(folder: Path, cluster: RayCluster, source: str) -> subprocess.Popen[str]:
    folder.mkdir(parents=True)
    (folder / "lightning-kernel.toml").write_text(cluster.toml())
    (folder / "app.py").write_text(source)
    return subprocess.Popen(
        [sys.executable, "-m", "lightning_kernel", "run", "app", "app.py"],
        cwd=folder,
        env={**os.environ, "LK_DATA_DIR": str(folder / "data")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def start_round(tmp: Path, cluster: RayCluster, n: int) -> dict[str, Any]:
    folder = tmp / f"start-{n}"
    proc = kernel(folder, cluster, START_APP.replace("CALLS", str(CALLS)))
    _, err = proc.communicate(timeout=300)
    if proc.returncode != 0:
        raise SystemExit(f"the start round failed: {err[-2000:]}")
    ev = history(folder)
    cold = stages(ev, "root.cold", "running")[0] - requested(ev, "root.cold")[0]
    warm = stages(ev, "root.warm", "running")[0] - requested(ev, "root.warm")[0]
    asked, done = requested(ev, "root.warm")[1:], stages(ev, "root.warm", "succeeded")[1:]
    trips = [d - a for a, d in zip(asked, done, strict=False)]
    return {"cold": cold, "warm": warm, "trips": trips}


def plain_actor() -> dict[str, Any]:
    import ray

    @ray.remote(num_cpus=1)
    class A:
        def ping(self) -> int:
            return os.getpid()

    t = time.perf_counter()
    a = A.remote()  # type: ignore[attr-defined]
    ray.get(a.ping.remote())
    start = time.perf_counter() - t
    trips = []
    for _ in range(CALLS):
        t = time.perf_counter()
        ray.get(a.ping.remote())
        trips.append(time.perf_counter() - t)
    ray.kill(a)
    return {"start": start, "trips": trips}


def loss_round(tmp: Path, cluster: RayCluster, n: int) -> dict[str, float]:
    import ray

    spares = [cluster.add_node(num_cpus=1, resources={"lk_spare": 1}) for _ in range(2)]
    folder = tmp / f"loss-{n}"
    proc = kernel(folder, cluster, LOSS_APP)
    try:
        deadline = time.monotonic() + 120
        node = ""
        while time.monotonic() < deadline and not node:
            ev = history(folder)
            if stages(ev, "root.w", "running"):
                node = next(e for e in ev if e["type"] == "work.worker_started")["body"]["ref"]["node"]
            time.sleep(0.1)
        victim = next(s for s in spares if s.node_id == node)
        removed_at = time.time()
        dead_at: list[float] = []

        def watch() -> None:
            while time.time() - removed_at < 60:
                if any(x["NodeID"] == node and not x["Alive"] for x in ray.nodes()):
                    dead_at.append(time.time())
                    return
                time.sleep(0.05)

        watcher = threading.Thread(target=watch)
        watcher.start()
        cluster.remove_node(victim)
        watcher.join()
        _, err = proc.communicate(timeout=180)
        if proc.returncode != 0:
            raise SystemExit(f"the loss round failed: {err[-2000:]}")
        again = stages(history(folder), "root.w", "running")[-1]
        return {
            "relaunched": again - removed_at,
            "declared_dead": (dead_at or [float("nan")])[0] - removed_at,
        }
    finally:
        alive = {x["NodeID"] for x in ray.nodes() if x["Alive"]}
        for s in spares:
            if s.node_id in alive:
                cluster.remove_node(s)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    cluster = RayCluster()
    import ray

    if ray.is_initialized():
        ray.shutdown()  # the cluster helper joined to warm its nodes up; the bench has a namespace of its own
    ray.init(address=cluster.address, namespace="lk-bench", log_to_driver=False)
    try:
        with tempfile.TemporaryDirectory(prefix="lk-bench-ray-") as tmp:
            starts, plains, losses = [], [], []
            for n in range(args.rounds):
                starts.append(start_round(Path(tmp), cluster, n))
                plains.append(plain_actor())
                losses.append(loss_round(Path(tmp), cluster, n))
    finally:
        ray.shutdown()
        cluster.shutdown()

    def med(values: list[float]) -> float:
        return statistics.median(values)

    print(f"ray executor, {args.rounds} rounds (medians):")
    print(f"  worker start to running, cold: {med([s['cold'] for s in starts]):.2f} s")
    print(f"  worker start to running, warm: {med([s['warm'] for s in starts]):.2f} s")
    print(f"  plain Ray actor, creation to first call back: {med([p['start'] for p in plains]):.3f} s")
    print(f"  call round trip: {med([t for s in starts for t in s['trips']]) * 1000:.1f} ms")
    print(f"  plain Ray actor call round trip: {med([t for p in plains for t in p['trips']]) * 1000:.2f} ms")
    print(f"  node removed -> declared dead by Ray: {med([x['declared_dead'] for x in losses]):.2f} s")
    print(f"  node removed -> relaunched Work running: {med([x['relaunched'] for x in losses]):.2f} s")


if __name__ == "__main__":
    main()
