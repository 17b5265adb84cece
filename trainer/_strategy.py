"""Where the model runs: one device, or DDP over ``torch.distributed`` (gloo on CPU, NCCL on GPU).

A DDP process learns its rank from the environment (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``,
``MASTER_ADDR``/``MASTER_PORT``): torchrun sets it, and so do the Trainer's own launchers for
``devices=N`` (``_launch.py``).
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import os
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ._errors import MisconfigurationException

_DDP_KINDS = ("ddp", "ddp_spawn", "ddp_fork", "ddp_notebook", "ddp_find_unused_parameters_true")


class _TrainingStepModule(nn.Module):
    """Routes DDP's ``forward`` to ``training_step``: DDP prepares its gradient buckets in ``forward``."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.module.training_step(*args, **kwargs)  # type: ignore[operator]


def torchrun_env() -> bool:
    """True inside a process that torchrun (or our launcher) started with its rank in the environment."""
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"))


class Strategy:
    """Single device unless ``kind`` is a DDP flavour; one object answers rank and collective questions."""

    def __init__(self, kind: str, accelerator: str, device_ids: list[int], num_nodes: int) -> None:
        self.kind = kind
        self.accelerator = accelerator
        self.device_ids = device_ids
        self.num_nodes = num_nodes
        self.distributed = kind in _DDP_KINDS
        self.find_unused_parameters = kind == "ddp_find_unused_parameters_true"
        self.num_processes = len(device_ids) if self.distributed else 1
        self.global_rank = 0
        self.local_rank = 0
        self.node_rank = 0
        self.world_size = self.num_processes * num_nodes if self.distributed else 1
        self.external = False  # processes started by torchrun rather than by us
        if self.distributed and torchrun_env():
            self._ranks_from_env()
        self.root_device = self._device()
        self.model: nn.Module | None = None
        self._ddp: nn.Module | None = None
        self.launcher: Any = None
        if self.distributed and not self.external:
            from ._launch import make_launcher

            self.launcher = make_launcher(self)

    def _ranks_from_env(self) -> None:
        self.external = True
        self.global_rank = int(os.environ["RANK"])
        self.local_rank = int(os.environ["LOCAL_RANK"])
        self.node_rank = int(os.environ.get("GROUP_RANK", os.environ.get("NODE_RANK", "0")))
        world = int(os.environ["WORLD_SIZE"])
        if world != self.world_size:
            raise MisconfigurationException(
                f"the environment says WORLD_SIZE={world}, but the Trainer was built for "
                f"devices={self.num_processes} x num_nodes={self.num_nodes} = {self.world_size} processes; make "
                "them agree (e.g. torchrun --nproc_per_node=<devices> --nnodes=<num_nodes>)"
            )

    def set_ranks(self, local_rank: int, node_rank: int = 0) -> None:
        self.local_rank = local_rank
        self.node_rank = node_rank
        self.global_rank = node_rank * self.num_processes + local_rank
        self.root_device = self._device()

    def _device(self) -> torch.device:
        if self.accelerator == "cuda":
            return torch.device("cuda", self.device_ids[self.local_rank] if self.device_ids else 0)
        if self.accelerator == "mps":
            return torch.device("mps")
        return torch.device("cpu")

    @property
    def is_global_zero(self) -> bool:
        return self.global_rank == 0

    # -- process group ------------------------------------------------------------------------
    def setup_environment(self) -> None:
        if self.accelerator == "cuda":
            torch.cuda.set_device(self.root_device)
        if not self.distributed or dist.is_initialized():
            return
        backend = "nccl" if self.accelerator == "cuda" else "gloo"
        dist.init_process_group(
            backend,
            init_method=f"tcp://{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}",
            rank=self.global_rank,
            world_size=self.world_size,
            timeout=datetime.timedelta(seconds=int(os.environ.get("LK_DDP_TIMEOUT_S", "1800"))),
        )
        # A script that ends with the group alive aborts at interpreter finalization (gloo's threads
        # still hold tensors): leave the group while Python is whole, which Lightning scripts seldom do.
        atexit.register(_leave_process_group)

    def _collective(self) -> bool:
        return self.distributed and self.world_size > 1 and dist.is_available() and dist.is_initialized()

    # -- the model ----------------------------------------------------------------------------
    def setup_module(self, module: nn.Module, sync_batchnorm: bool) -> None:
        module.to(self.root_device)
        self.model = module
        self._ddp = None
        if self._collective():
            if sync_batchnorm:
                converted = nn.SyncBatchNorm.convert_sync_batchnorm(module)
                if converted is not module:
                    raise MisconfigurationException(
                        "sync_batchnorm needs a module whose root is not a BatchNorm"
                    )
            from torch.nn.parallel import DistributedDataParallel

            device_ids = [self.root_device.index] if self.root_device.type == "cuda" else None
            self._ddp = DistributedDataParallel(
                _TrainingStepModule(module),
                device_ids=device_ids,
                find_unused_parameters=self.find_unused_parameters,
            )
            self.model = self._ddp

    def training_step_fn(self, module: nn.Module) -> Any:
        return self._ddp if self._ddp is not None else module.training_step

    def block_backward_sync(self) -> contextlib.AbstractContextManager[Any]:
        """Skip DDP's gradient all-reduce on batches that only accumulate."""
        if self._ddp is not None:
            return self._ddp.no_sync()  # type: ignore[operator]
        return contextlib.nullcontext()

    # -- collectives --------------------------------------------------------------------------
    def barrier(self, name: str | None = None) -> None:
        if self._collective():
            if dist.get_backend() == "nccl":
                dist.barrier(device_ids=[self.root_device.index])
            else:
                dist.barrier()

    def broadcast(self, obj: Any, src: int = 0) -> Any:
        if not self._collective():
            return obj
        holder = [obj]
        dist.broadcast_object_list(holder, src=src)
        return holder[0]

    def reduce(self, tensor: Tensor, reduce_op: str | None = "mean") -> Tensor:
        if not self._collective() or not isinstance(tensor, Tensor):
            return tensor
        op = {"max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}.get(
            str(reduce_op).lower(), dist.ReduceOp.SUM
        )
        out = tensor.clone()
        dist.all_reduce(out, op=op)
        if str(reduce_op).lower() in ("mean", "avg"):
            out = out / self.world_size
        return out

    def reduce_boolean_decision(self, decision: bool, all: bool = True) -> bool:
        if not self._collective():
            return decision
        votes = self.reduce(torch.tensor(int(decision), device=self.root_device), "sum")
        return bool(votes == self.world_size) if all else bool(votes > 0)

    def all_gather(self, tensor: Tensor, sync_grads: bool = False) -> Tensor:
        if not self._collective():
            return tensor
        tensor = tensor.contiguous()
        if sync_grads:
            import torch.distributed.nn.functional as dist_fn

            return torch.stack(dist_fn.all_gather(tensor))
        parts = [torch.empty_like(tensor) for _ in range(self.world_size)]
        dist.all_gather(parts, tensor)
        return torch.stack(parts)

    def teardown(self) -> None:
        self._ddp = None


def _leave_process_group() -> None:
    if dist.is_available() and dist.is_initialized():
        # Every rank leaves together: a gloo group torn down while a peer still talks to it aborts
        # ("terminate called without an active exception"), seen in 1 of 6 torchrun runs here.
        with contextlib.suppress(Exception):
            if dist.get_backend() == "gloo":
                dist.monitored_barrier(timeout=datetime.timedelta(seconds=10))
            else:
                dist.barrier()
        dist.destroy_process_group()


def parse_devices(devices: Any, accelerator: str) -> list[int]:
    """``devices`` (int, list, "0,1", "-1", "auto") as device indices for ``accelerator``."""
    if accelerator == "cuda":
        available = torch.cuda.device_count()
        if devices in ("auto", -1, "-1"):
            return list(range(available))
    else:
        available = os.cpu_count() or 1
        if devices == "auto":
            return [0]
        if devices in (-1, "-1"):
            return list(range(available))
    if isinstance(devices, str):
        parts = [p for p in devices.split(",") if p.strip()]
        devices = int(parts[0]) if len(parts) == 1 and "," not in devices else [int(p) for p in parts]
    if isinstance(devices, bool) or not isinstance(devices, (int, list, tuple)):
        raise MisconfigurationException(
            f"devices={devices!r}: pass an int, a list of indices, a string '0,1' or 'auto'"
        )
    ids = list(range(devices)) if isinstance(devices, int) else [int(d) for d in devices]
    if not ids:
        raise MisconfigurationException(f"devices={devices!r} selects no device; pass at least 1")
    if accelerator == "cuda" and max(ids) >= available:
        raise MisconfigurationException(
            f"devices={devices!r} asks for CUDA device {max(ids)}, but only {available} CUDA device(s) are visible"
        )
    return ids
