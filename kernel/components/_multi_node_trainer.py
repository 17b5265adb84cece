"""``LightningTrainerMultiNode`` and ``FabricMultiNode``: nodes whose ``run()`` makes a Trainer (or a
Fabric) that trains across all of them.

Each node runs as ``PyTorchSpawnMultiNode``'s do (``nprocs`` spawned processes, see
``_multi_node_spawn.py``), and each process gets, as in Lightning App, the environment torchrun would
give it (``MASTER_ADDR``, ``MASTER_PORT``, ``GROUP_RANK``/``NODE_RANK``, ``RANK``, ``LOCAL_RANK``,
``WORLD_SIZE``, ``LOCAL_WORLD_SIZE``, ``TORCHELASTIC_RUN_ID``), so the Trainer takes its rank from it and
starts no processes of its own. While the user's ``run()`` runs, ``Trainer.__init__`` (or
``Fabric.__init__``) is instrumented so that whatever the code passes, the Trainer is built for this
job: ``devices=nprocs``, ``num_nodes=<num_nodes>``, ``accelerator="auto"`` (``"cpu"`` where MPS is all
there is: it does not train across processes), and a ``*_spawn`` strategy named as its non-spawning
twin (the processes exist already). ``lightning_kernel.trainer.Trainer`` is instrumented, and
``lightning.pytorch``'s and ``pytorch_lightning``'s where they are installed.

A Trainer of several processes publishes no ``trainer_state`` into its Work and keeps its checkpoints in
its own folder (``trainer/_in_work.py``); the Work's own attributes are its state as usual (local rank
0's reach the worker).

Fabric is not part of lightning-kernel: ``FabricMultiNode``'s nodes import ``lightning.fabric`` (or
``lightning_fabric``) where Lightning App did, on the node before its processes start, and a node
without it fails its call with ``MissingExtra`` naming the package to install.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import warnings
from collections.abc import Callable
from typing import Any

from .._work import LightningWork
from ..errors import MissingExtra
from ..utilities._tracer import Tracer
from ._multi_node_spawn import Ranks, SpawnedMultiNode, launch_node

TRAINER_PACKAGES = ("lightning.pytorch", "pytorch_lightning")
"""PL packages whose Trainer is instrumented too, where installed (lightning_kernel.trainer's always)."""
FABRIC_PACKAGES = ("lightning.fabric", "lightning_fabric")

_NOT_SPAWNED = {"ddp_spawn": "ddp", "ddp_sharded_spawn": "ddp_sharded"}
_SPAWNING = ("spawn", "fork")


def installed(name: str) -> bool:
    """Whether the module ``name`` can be imported (a dotted name whose parent is missing cannot)."""
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def _mps_only() -> bool:
    import torch

    return not torch.cuda.is_available() and torch.backends.mps.is_available()


def _job_defaults(ranks: Ranks, strategy_classes: tuple[type, ...]) -> Callable[..., Any]:
    """The ``pre_fn`` that makes a Trainer's or a Fabric's arguments those of this job."""

    def pre_fn(obj: Any, *args: Any, **kwargs: Any) -> tuple[dict[str, Any], tuple[Any, ...], dict[str, Any]]:
        kwargs["devices"] = ranks.nprocs
        kwargs["num_nodes"] = ranks.num_nodes
        if _mps_only():
            if kwargs.get("accelerator", "auto") != "cpu":
                warnings.warn(
                    "Forcing `accelerator=cpu` as MPS does not support distributed training.", stacklevel=2
                )
            kwargs["accelerator"] = "cpu"
        else:
            kwargs["accelerator"] = "auto"
        strategy = kwargs.get("strategy")
        if isinstance(strategy, str):
            kwargs["strategy"] = _NOT_SPAWNED.get(strategy, strategy)
        elif (
            isinstance(strategy, strategy_classes)
            and (start := getattr(strategy, "_start_method", None)) in _SPAWNING
        ):
            raise ValueError(
                f"{type(obj).__name__}(strategy={type(strategy).__name__}(start_method={start!r})): DDP "
                "Spawned strategies aren't supported yet; the node's processes exist already, pass "
                "strategy='ddp'"
            )
        return {}, args, kwargs

    return pre_fn


def _run_instrumented(
    work: LightningWork,
    user_run: Callable[..., Any],
    ranks: Ranks,
    classes: list[type],
    strategies: list[type],
) -> None:
    os.environ.update(ranks.torchelastic_env())
    tracer = Tracer()
    for cls in classes:
        tracer.add_traced(cls, "__init__", pre_fn=_job_defaults(ranks, tuple(strategies)))
    tracer._instrument()
    try:
        user_run(work)
    finally:
        tracer._restore()


def _trainer_body(work: LightningWork, user_run: Callable[..., Any], ranks: Ranks) -> None:
    from lightning_kernel.trainer import Trainer

    classes: list[type] = [Trainer]
    strategies: list[type] = []
    for name in TRAINER_PACKAGES:
        if installed(name):
            pkg = importlib.import_module(name)
            classes.append(pkg.Trainer)
            strategies.append(pkg.strategies.DDPStrategy)
    _run_instrumented(work, user_run, ranks, classes, strategies)


def _fabric_body(work: LightningWork, user_run: Callable[..., Any], ranks: Ranks) -> None:
    packages = [importlib.import_module(name) for name in FABRIC_PACKAGES if installed(name)]
    # As under `lightning run`: Fabric sets up the distributed environment itself.
    os.environ["LT_CLI_USED"] = "1"
    classes = [pkg.Fabric for pkg in packages]
    strategies = [pkg.strategies.DDPStrategy for pkg in packages]
    _run_instrumented(work, user_run, ranks, classes, strategies)


def _trainer_node(work: LightningWork, user_run: Callable[..., Any], node: dict[str, Any]) -> None:
    launch_node(work, user_run, node, _trainer_body)


def _fabric_node(work: LightningWork, user_run: Callable[..., Any], node: dict[str, Any]) -> None:
    if not any(installed(name) for name in FABRIC_PACKAGES):
        raise MissingExtra(
            f"{work.name} (a FabricMultiNode node)", " or ".join(FABRIC_PACKAGES), "lightning-fabric"
        )
    launch_node(work, user_run, node, _fabric_body)


class LightningTrainerMultiNode(SpawnedMultiNode):
    """``MultiNode`` whose nodes each run ``work_cls.run()``, where a Trainer trains across every node
    (see the module docstring)."""

    LAUNCHER = staticmethod(_trainer_node)


class FabricMultiNode(SpawnedMultiNode):
    """``MultiNode`` whose nodes each run ``work_cls.run()``, where a ``lightning.fabric.Fabric`` trains
    across every node (see the module docstring)."""

    LAUNCHER = staticmethod(_fabric_node)


__all__ = ["FabricMultiNode", "LightningTrainerMultiNode"]
