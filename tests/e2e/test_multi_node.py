"""The multi-node components, end to end through ``lightning-kernel run app``: every node gets node 0's
address and port and its own rank; nodes that train together over gloo (their own process group, one
``PyTorchSpawnMultiNode`` sets up, a DDP Trainer, a Lightning script); and ``FabricMultiNode`` on a
machine without Fabric."""

from __future__ import annotations

import importlib.util
import textwrap
from typing import Any

import pytest

NODES_APP = """
from lightning_kernel import CloudCompute, LightningApp, LightningWork
from lightning_kernel.components import MultiNode

class Node(LightningWork):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.got = None
    def run(self, main_address, main_port, num_nodes, node_rank):
        self.got = {"address": main_address, "port": main_port, "num_nodes": num_nodes, "rank": node_rank}

app = LightningApp(MultiNode(Node, num_nodes=3, cloud_compute=CloudCompute("gpu")))
"""


def _nodes(lk: Any) -> dict[str, dict[str, Any]]:
    state = lk.state()
    assert state["run"]["status"] == "succeeded", state["run"]
    return state["root"]["flows"]["ws"]["works"]


def test_every_node_runs_with_node_0s_address_and_its_own_rank_once_all_have_started(lk: Any) -> None:
    proc = lk("run", "app", lk.app(NODES_APP), check=True)
    assert proc.stdout.strip().splitlines()[-1] == "MultiNode: the 3 nodes of Node succeeded"
    nodes = _nodes(lk)
    events = lk.json_lines("history", "latest")
    endpoints = {e["body"]["work"]: e for e in events if e["type"] == "work.endpoint"}
    main = endpoints["root.ws.0"]["body"]
    got = [nodes[str(i)]["vars"]["got"] for i in range(3)]
    assert [g["rank"] for g in got] == [0, 1, 2]
    assert {(g["address"], g["port"], g["num_nodes"]) for g in got} == {
        (main["internal_ip"], main["port"], 3)
    }
    assert all(n["status"]["stage"] == "succeeded" for n in nodes.values())
    # No node ran before every node's worker had said where it is; each was stopped once it succeeded.
    first_run = min(e["seq"] for e in events if e["type"] == "work.run_requested")
    assert len(endpoints) == 3 and all(e["seq"] < first_run for e in endpoints.values())
    stopped = {e["body"]["work"] for e in events if e["type"] == "work.stop_requested"}
    assert stopped == {"root.ws.0", "root.ws.1", "root.ws.2"}


def test_a_work_whose_run_cannot_take_the_nodes_arguments_is_refused_when_the_app_loads(lk: Any) -> None:
    app = NODES_APP.replace("main_port, num_nodes, node_rank", "main_port, node_rank")
    proc = lk("run", "app", lk.app(app))
    assert proc.returncode != 0
    assert (
        "MultiNode calls Node.run(main_address=..., main_port=..., num_nodes=..., node_rank=...) on each node"
        in (proc.stderr)
    )
    assert "unexpected keyword argument 'num_nodes'" in proc.stderr


ALL_REDUCE_APP = """
import torch
import torch.distributed as dist
from lightning_kernel import CloudCompute, LightningApp, LightningWork
from lightning_kernel.components import MultiNode

class Node(LightningWork):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.total = None
    def run(self, main_address, main_port, num_nodes, node_rank):
        dist.init_process_group(
            "gloo", init_method=f"tcp://{main_address}:{main_port}", rank=node_rank, world_size=num_nodes
        )
        t = torch.tensor([10.0 ** node_rank])
        dist.all_reduce(t)
        dist.barrier()
        dist.destroy_process_group()
        self.total = t.item()

app = LightningApp(MultiNode(Node, num_nodes=2, cloud_compute=CloudCompute()))
"""


def test_nodes_all_reduce_over_gloo_at_node_0s_address(lk: Any) -> None:
    pytest.importorskip("torch")
    lk("run", "app", lk.app(ALL_REDUCE_APP), check=True)
    assert [n["vars"]["total"] for n in _nodes(lk).values()] == [11.0, 11.0]


SPAWN_APP = """
import torch
import torch.distributed as dist
from lightning_kernel import CloudCompute, LightningApp, LightningWork
from lightning_kernel.components import PyTorchSpawnMultiNode

class Node(LightningWork):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seen = None
        self.steps = []
    def run(self, world_size, node_rank, global_rank, local_rank):
        t = torch.tensor([10.0 ** global_rank])
        dist.all_reduce(t)
        self.steps.append(global_rank)  # in place: travels with the next assignment
        self.seen = {
            "backend": dist.get_backend(), "world_size": world_size, "node_rank": node_rank,
            "global_rank": global_rank, "local_rank": local_rank, "total": t.item(),
        }
        print(f"rank {global_rank} of {world_size}: total {t.item()}")

app = LightningApp(PyTorchSpawnMultiNode(Node, CloudCompute("gpu-fast-multi"), 2))
"""


def test_pytorch_spawn_nodes_run_in_a_process_group_set_up_for_them(lk: Any) -> None:
    pytest.importorskip("torch")
    lk("run", "app", lk.app(SPAWN_APP), check=True)
    nodes = _nodes(lk)
    for rank in (0, 1):
        node = nodes[str(rank)]["vars"]
        assert node["seen"] == {
            "backend": "gloo",
            "world_size": 2,
            "node_rank": rank,
            "global_rank": rank,
            "local_rank": 0,
            "total": 11.0,
        }
        assert node["steps"] == [rank]
        # What the node's process printed is the Work's log.
        assert f"rank {rank} of 2: total 11.0" in lk("logs", "latest", f"root.ws.{rank}", check=True).stdout


TRAINER_APP = """
import os
from lightning_kernel import CloudCompute, LightningApp, LightningWork
from lightning_kernel.components import LightningTrainerMultiNode
from lightning_kernel.trainer import Trainer
from lightning_kernel.trainer.demos.boring_classes import BoringModel

class Train(LightningWork):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.result = None
    def run(self):
        # What the component sets for the job wins: 1 device per node here, both nodes, no spawning.
        trainer = Trainer(
            strategy="ddp_spawn", devices=3, num_nodes=5, max_epochs=1, limit_train_batches=4,
            limit_val_batches=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
        )
        trainer.fit(BoringModel())
        checkpoint = trainer.checkpoint_callback.best_model_path
        self.result = {
            "strategy": trainer.strategy.kind, "world_size": trainer.world_size, "num_nodes": trainer.num_nodes,
            "global_rank": trainer.global_rank, "global_step": trainer.global_step,
            "node_rank": os.environ["NODE_RANK"],
            "checkpoint_here": os.path.isfile(checkpoint) and not os.path.relpath(checkpoint).startswith(".."),
        }

app = LightningApp(LightningTrainerMultiNode(Train, CloudCompute("gpu-fast-multi"), 2))
"""


def test_a_ddp_trainer_trains_across_the_nodes(lk: Any) -> None:
    pytest.importorskip("torch")
    lk("run", "app", lk.app(TRAINER_APP), check=True, timeout=120)
    nodes = _nodes(lk)
    results = [nodes[str(rank)]["vars"]["result"] for rank in (0, 1)]
    for rank, result in enumerate(results):
        assert result["strategy"] == "ddp" and result["world_size"] == 2 and result["num_nodes"] == 2
        assert result["global_rank"] == rank and result["node_rank"] == str(rank)
        assert result["global_step"] == 4
    # Global rank 0 writes the checkpoints, into its own Work's folder.
    assert [r["checkpoint_here"] for r in results] == [True, False]


SCRIPT = """
import os
from lightning_kernel.trainer import Trainer
from lightning_kernel.trainer.demos.boring_classes import BoringModel

trainer = Trainer(
    max_epochs=1, limit_train_batches=4, limit_val_batches=1, logger=False, enable_progress_bar=False,
    enable_model_summary=False,
)
trainer.fit(BoringModel())
print(f"rank {trainer.global_rank} of {trainer.world_size}, node {os.environ['NODE_RANK']}: {trainer.global_step} steps")
"""

SCRIPT_APP = """
from lightning_kernel import CloudCompute, LightningApp
from lightning_kernel.components import LightningTrainerScript

app = LightningApp(LightningTrainerScript("train.py", num_nodes=2, cloud_compute=CloudCompute("gpu-fast-multi")))
"""


def test_a_lightning_script_trains_on_two_nodes(lk: Any) -> None:
    pytest.importorskip("torch")
    (lk.dir / "train.py").write_text(textwrap.dedent(SCRIPT))
    proc = lk("run", "app", lk.app(SCRIPT_APP), check=True, timeout=120)
    assert proc.stdout.strip().splitlines()[-1] == "LightningTrainerScript: train.py finished on 2 nodes"
    nodes = _nodes(lk)
    for rank in (0, 1):
        log = lk("logs", "latest", f"root.ws.{rank}", check=True).stdout
        assert f"The node {rank} started !" in log
        assert f"rank {rank} of 2, node {rank}: 4 steps" in log
        assert nodes[str(rank)]["vars"]["has_finished"] is True
    best = nodes["0"]["vars"]["best_model_path"]
    assert best["type"] == "__path__" and best["origin"] == "root.ws.0" and best["path"].endswith(".ckpt")
    assert nodes["1"]["vars"]["best_model_path"] is None  # only global rank 0 writes checkpoints


FABRIC_APP = """
from lightning_kernel import CloudCompute, LightningApp, LightningWork
from lightning_kernel.components import FabricMultiNode

class Train(LightningWork):
    def run(self):
        print("the user's run() ran")

app = LightningApp(FabricMultiNode(Train, CloudCompute("gpu-fast-multi"), 2))
"""


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # lightning.fabric without lightning
        return False


@pytest.mark.skipif(
    any(_installed(name) for name in ("lightning.fabric", "lightning_fabric")),
    reason="Lightning Fabric is installed here",
)
def test_fabric_nodes_without_fabric_fail_naming_what_to_install(lk: Any) -> None:
    proc = lk("run", "app", lk.app(FABRIC_APP))
    assert proc.returncode != 0
    assert "the user's run() ran" not in proc.stdout
    state = lk.state()
    assert state["run"]["status"] == "failed"
    failed = [
        n["status"]
        for n in state["root"]["flows"]["ws"]["works"].values()
        if n["status"]["stage"] == "failed"
    ]
    assert failed and failed[0]["reason"] == "MissingExtra"
    assert (
        "(a FabricMultiNode node) needs lightning.fabric or lightning_fabric, which is not installed: "
        "pip install 'lightning-fabric'"
    ) in failed[0]["message"]
    assert "importlib" not in failed[0]["message"]  # said by the component, not by an import deep inside
