"""Works on a real local Ray cluster (one per session, ``tests/_fixtures/ray_cluster.py``), through the
real ``lightning-kernel`` command: CloudCompute to resources, a Work no node can hold, Paths between
a Ray Work and a local one, a node removed under a training Work, a kernel killed with its actor alive."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import pytest

pytestmark = pytest.mark.slow

PLACED = """
import os, time
from lightning_kernel import LightningApp, LightningFlow, LightningWork, CloudCompute

GO = "GO_PATH"  # the test's folder: the Works import this file from their own copy of the code

class Where(LightningWork):
    def __init__(self, compute):
        # Not started with the flow: a started worker holds its resources until its first call,
        # and on_b's (called last) would hold node b while small_1 or small_2 waits for it.
        super().__init__(cloud_compute=compute, parallel=True, start_with_flow=False)
        self.work_dir = ""
    def run(self, hold):
        self.work_dir = os.environ.get("LK_WORK_DIR", "")
        deadline = time.time() + 170
        while hold and not os.path.exists(GO) and time.time() < deadline:
            time.sleep(0.05)

class Root(LightningFlow):
    def __init__(self):
        super().__init__()
        self.small_1 = Where(CloudCompute("cpu-small"))
        self.small_2 = Where(CloudCompute("cpu-small"))
        self.on_b = Where(CloudCompute("default", resources={"lk_node_b": 1}))
    def run(self):
        self.small_1.run(True)
        self.small_2.run(True)
        if self.small_1.is_running and self.small_2.is_running:
            open(GO, "w").close()  # both at once: 2 CPUs each, on nodes of 2 CPUs
        if self.small_1.has_succeeded and self.small_2.has_succeeded:
            self.on_b.run(False)
        if self.on_b.has_succeeded:
            self.stop("placed")

app = LightningApp(Root())
"""


def _configure(lk: Any, ray_cluster: Any, **extra: Any) -> None:
    (lk.dir / "lightning-kernel.toml").write_text(ray_cluster.toml(**extra))


def _worker_refs(lk: Any) -> dict[str, list[dict[str, Any]]]:
    refs: dict[str, list[dict[str, Any]]] = {}
    for e in lk.json_lines("history", "latest"):
        if e["type"] == "work.worker_started":
            refs.setdefault(e["body"]["work"], []).append(e["body"])
    return refs


def _story(lk: Any) -> str:
    """The run's Work statuses and workers, one line each: what a failed assertion shows."""
    lines = []
    for e in lk.json_lines("history", "latest"):
        if e["type"] in ("work.status_changed", "work.worker_started", "work.worker_exited"):
            b = e["body"]
            lines.append(f"{e['seq']} {e['type']} {json.dumps(b, default=str)[:300]}")
    return "\n".join(lines)


def _node_ids(ray_cluster: Any, *nodes: Any) -> list[str]:
    return [n.node_id for n in nodes]


def test_cloud_compute_names_become_ray_resources(lk: Any, ray_cluster: Any) -> None:
    _configure(lk, ray_cluster)
    app = lk.app(PLACED.replace("GO_PATH", str(lk.dir / "go")))
    out = lk("run", "app", app, "--cloud", timeout=240)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "they reach NATS at nats://127.0.0.1:" in out.stderr, out.stderr
    refs = _worker_refs(lk)
    assert {r["executor"] for rs in refs.values() for r in rs} == {"ray"}
    a, b = _node_ids(ray_cluster, *ray_cluster.workers)
    # cpu-small is 2 CPUs: each node has 2, so the two Works ran side by side on different nodes
    assert {refs["root.small_1"][0]["ref"]["node"], refs["root.small_2"][0]["ref"]["node"]} == {a, b}, (
        f"nodes a={a} b={b}; what the run saw:\n{_story(lk)}\n{out.stderr}"
    )
    assert refs["root.on_b"][0]["ref"]["node"] == b, "a custom resource only node b has"
    state = lk.state()["root"]["works"]
    assert state["on_b"]["vars"]["work_dir"].endswith("node-2"), "the Work ran with node b's own disk"


NO_SUCH_NODE = """
from lightning_kernel import LightningApp, LightningFlow, LightningWork, CloudCompute

class Big(LightningWork):
    def __init__(self):
        super().__init__(cloud_compute=CloudCompute("gpu-fast-multi", executor="ray"))
    def run(self):
        print("never")

class Root(LightningFlow):
    def __init__(self):
        super().__init__()
        self.big = Big()
    def run(self):
        self.big.run()

app = LightningApp(Root())
"""


def test_a_work_no_node_can_hold_fails_at_once_naming_what_it_asked_and_what_the_nodes_have(
    lk: Any, ray_cluster: Any
) -> None:
    _configure(lk, ray_cluster)
    started = time.monotonic()
    out = lk("run", "app", lk.app(NO_SUCH_NODE), timeout=120)
    assert out.returncode != 0
    text = out.stdout + out.stderr
    assert "root.big asks for 32 CPU, 4 GPU, which no node of the Ray cluster" in text, text
    assert "2 CPU" in text and "lk_node_b" in text, "it says what the nodes have"
    assert "never" not in text
    assert time.monotonic() - started < 60, "at once, not after a wait"


HANDOVER = """
from lightning_kernel import LightningApp, LightningFlow, LightningWork, CloudCompute
from lightning_kernel.storage import Path

class OnRay(LightningWork):
    def __init__(self):
        super().__init__(cloud_compute=CloudCompute("default", executor="ray"))
        self.out = Path("ray.txt")
        self.seen = ""
    def run(self, inp=None):
        if inp is None:
            with open(self.out, "w") as f:
                f.write("ray\\n")
        else:
            self.seen = open(inp).read()

class Local(LightningWork):
    def __init__(self):
        super().__init__()
        self.out = Path("local.txt")
    def run(self, inp):
        with open(self.out, "w") as f:
            f.write(open(inp).read() + "local\\n")

class Root(LightningFlow):
    def __init__(self):
        super().__init__()
        self.first = OnRay()
        self.local = Local()
        self.last = OnRay()
    def run(self):
        self.first.run()
        if self.first.has_succeeded:
            self.local.run(self.first.out)
        if self.local.has_succeeded:
            self.last.run(self.local.out)
        if self.last.has_succeeded:
            print("FINAL", self.last.seen.replace("\\n", ","))
            self.stop()

app = LightningApp(Root())
"""


def test_a_path_goes_from_a_ray_work_to_a_local_one_and_back(lk: Any, ray_cluster: Any) -> None:
    _configure(lk, ray_cluster)
    out = lk("run", "app", lk.app(HANDOVER), timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "FINAL ray,local," in out.stdout, out.stdout
    refs = _worker_refs(lk)
    assert refs["root.first"][0]["executor"] == "ray" and refs["root.local"][0]["executor"] == "local"


TRAIN = """
import time
from lightning_kernel import LightningApp, LightningFlow, LightningWork, CloudCompute
from lightning_kernel.trainer import Trainer
from lightning_kernel.trainer.callbacks import ModelCheckpoint
from lightning_kernel.trainer.demos.boring_classes import BoringModel

class Slow(BoringModel):
    def training_step(self, batch, batch_idx):
        time.sleep(0.03)
        return super().training_step(batch, batch_idx)

class Train(LightningWork):
    def __init__(self):
        super().__init__(
            cloud_compute=CloudCompute("default", executor="ray", resources={"lk_spare": 1}), parallel=True
        )
    def run(self):
        trainer = Trainer(
            max_steps=STEPS, limit_val_batches=0, logger=False, enable_progress_bar=False,
            callbacks=[ModelCheckpoint(every_n_train_steps=5, save_last=True)],
        )
        trainer.fit(Slow())

class Root(LightningFlow):
    def __init__(self):
        super().__init__()
        self.train = Train()
        self.seen = []
    def run(self):
        self.train.run()
        stage = self.train.status.stage
        if not self.seen or self.seen[-1] != stage:
            self.seen = self.seen + [stage]
        if self.train.has_succeeded:
            print("SEEN", self.seen)
            self.stop("trained")

app = LightningApp(Root())
"""


def _training_steps(lk: Any) -> list[tuple[int, int]]:
    """``(attempt, global_step)`` of the Work's trainer_state changes, in order."""
    return [
        (e["body"].get("attempt", 0), e["body"]["changes"]["trainer_state"]["global_step"])
        for e in lk.json_lines("history", "latest")
        if e["type"] == "work.state_changed" and "trainer_state" in e["body"]["changes"]
    ]


def _steps_so_far(lk: Any) -> list[tuple[int, int]]:
    try:
        return _training_steps(lk)
    except AssertionError:  # no database yet: the run has only begun
        return []


def _wait(what: str, predicate: Any, proc: subprocess.Popen[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"{what}: the run ended first:\n{out}\n{err}")
        time.sleep(0.3)
    raise AssertionError(f"{what}: not after {timeout} s")


def test_a_node_removed_under_a_training_work_relaunches_it_from_its_last_checkpoint(
    lk: Any, ray_cluster: Any
) -> None:
    pytest.importorskip("torch")
    spares = [ray_cluster.add_node(num_cpus=1, resources={"lk_spare": 1}) for _ in range(2)]
    try:
        _configure(lk, ray_cluster)
        proc = lk.popen("run", "app", lk.app(TRAIN.replace("STEPS", "120")))
        try:
            _wait("training reaches step 20", lambda: any(s >= 20 for _, s in _steps_so_far(lk)), proc)
            node = _worker_refs(lk)["root.train"][0]["ref"]["node"]
            victim = next(n for n in spares if n.node_id == node)
            ray_cluster.remove_node(victim)
            out, err = proc.communicate(timeout=240)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, out + err
        seen = out.split("SEEN ", 1)[1].splitlines()[0]
        assert "'running', 'pending', 'running'" in seen, (
            f"the flow sees it pending, then running again: {seen}"
        )
        history = lk.json_lines("history", "latest")
        relaunching = [
            e["body"]
            for e in history
            if e["type"] == "work.status_changed" and e["body"].get("reason") == "spot_retrival"
        ]
        assert relaunching and relaunching[0]["stage"] == "pending", relaunching
        assert "interruption 1 of at most 3" in relaunching[0]["message"], relaunching
        exits = [e["body"] for e in history if e["type"] == "work.worker_exited"]
        assert exits[0]["cause"] == "preempted" and "was lost" in exits[0]["message"], exits
        refs = _worker_refs(lk)["root.train"]
        assert len(refs) == 2 and refs[1]["ref"]["node"] != node, "relaunched on the other node"
        steps = _training_steps(lk)
        before = max(s for a, s in steps if a == 1)
        resumed = [s for a, s in steps if a == 2]
        assert resumed and resumed[0] >= 5, f"it resumed from a checkpoint, not from zero: {steps}"
        # the checkpoint may be newer than the last (throttled) state the flow got before the loss
        assert before >= 20 and resumed[0] < 120 and resumed[-1] == 120, steps
        restored = [
            e["body"]["data"]["path"]
            for e in history
            if e["type"] == "work.record" and e["body"]["kind"] == "path.restored"
        ]
        assert "lit://checkpoints/last.ckpt" in restored, restored
    finally:
        for n in spares:
            if n.node_id in {x["id"] for x in _alive(ray_cluster)}:
                ray_cluster.remove_node(n)


def _alive(ray_cluster: Any) -> list[dict[str, Any]]:
    import ray

    if not ray.is_initialized():
        ray.init(address=ray_cluster.address, namespace="lk-tests", log_to_driver=False)
    return [{"id": n["NodeID"]} for n in ray.nodes() if n.get("Alive")]


TICKER = """
import os, time
from lightning_kernel import LightningApp, LightningFlow, LightningWork, CloudCompute

class Ticker(LightningWork):
    def __init__(self):
        super().__init__(cloud_compute=CloudCompute("default", executor="ray"))
        self.n = 0
        self.pids = []
    def run(self):
        self.pids = sorted(set(self.pids) | {os.getpid()})
        while self.n < 30:
            self.n += 1
            print("tick", self.n, flush=True)
            time.sleep(0.2)

class Root(LightningFlow):
    def __init__(self):
        super().__init__()
        self.w = Ticker()
    def run(self):
        self.w.run()
        if self.w.has_succeeded:
            print("DONE", self.w.n, json.dumps(self.w.pids))
            self.stop()

import json
app = LightningApp(Root())
"""


def test_a_kernel_killed_with_its_actor_alive_is_resumed_and_re_attaches_it(
    lk: Any, ray_cluster: Any
) -> None:
    _configure(lk, ray_cluster)
    proc = lk.popen("run", "app", lk.app(TICKER))
    seen: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        seen.append(line)
        if "tick 4" in line:
            break
    else:
        proc.wait(30)
        assert proc.stderr is not None
        raise AssertionError(
            f"the run ended (rc {proc.returncode}) first:\n{''.join(seen)}\n{proc.stderr.read()}"
        )
    proc.kill()
    proc.wait()
    out = lk("resume", "latest", timeout=180, check=True).stdout
    done = next(line for line in out.splitlines() if line.startswith("DONE"))
    _, n, pids = done.split(" ", 2)
    assert n == "30" and len(json.loads(pids)) == 1, f"one worker, never two: {done}"
    history = lk("history", "latest", check=True).stdout
    assert "re-attached" in history, history
    assert history.count("work.worker_started") == 2, history
