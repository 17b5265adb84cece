"""PL's module path `utilities`: helpers users import from ``pytorch_lightning.utilities``.

``find_shared_parameters``/``set_shared_parameters`` (tied weights across devices, for XLA) are not
offered: a name left out on purpose raises an ImportError that says so.
"""

import os
from typing import Any

import torch
from torch import nn

from .._data import move_data_to_device
from .._data_connector import CombinedLoader
from .._hparams import AttributeDict
from .._not_offered import not_offered
from .._rank_zero import rank_zero_deprecation, rank_zero_info, rank_zero_only, rank_zero_warn
from .enums import GradClipAlgorithmType, LightningEnum
from .grads import grad_norm
from .parsing import is_picklable
from .warnings import disable_possible_user_warnings

FLOAT16_EPSILON = torch.finfo(torch.float16).eps
FLOAT32_EPSILON = torch.finfo(torch.float32).eps
FLOAT64_EPSILON = torch.finfo(torch.float64).eps


def measure_flops(model: nn.Module, forward_fn: Any, loss_fn: Any = None) -> int:
    """FLOPs of ``forward_fn()`` (and of ``loss_fn(forward_fn()).backward()`` when given), counted by
    ``torch.utils.flop_counter``. Build the model on the ``meta`` device to count without computing."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        if loss_fn is None:
            forward_fn()
        else:
            loss_fn(forward_fn()).backward()
    return int(counter.get_total_flops())


def suggested_max_num_workers(local_world_size: int) -> int:
    """How many DataLoader workers each of ``local_world_size`` processes may start: the CPUs this
    process may use, shared out, less one for the main process (at least 1)."""
    if local_world_size < 1:
        raise ValueError(f"`local_world_size` should be >= 1, got {local_world_size}.")
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, cpus // local_world_size - 1)


def is_shared_filesystem(strategy: Any = None, path: Any = None, timeout: int = 3) -> bool:
    """Whether every process sees ``path``: True for one process or a remote (fsspec) path; with
    several processes, rank zero writes a file there and every rank looks for it."""
    import uuid

    world_size = getattr(strategy, "world_size", 1)
    path = os.fspath(path) if path is not None else os.getcwd()
    if world_size == 1 or "://" in path:
        return True
    name = uuid.uuid4().hex if strategy.global_rank == 0 else ""
    name = strategy.broadcast(name)
    probe = os.path.join(path, f".lk_shared_{name}")
    if strategy.global_rank == 0:
        with open(probe, "w"):
            pass
    strategy.barrier()
    found = os.path.exists(probe)
    everyone = bool(strategy.reduce_boolean_decision(found, all=True))
    strategy.barrier()
    if strategy.global_rank == 0 and os.path.exists(probe):
        os.remove(probe)
    return everyone


__all__ = [
    "AttributeDict",
    "CombinedLoader",
    "GradClipAlgorithmType",
    "LightningEnum",
    "disable_possible_user_warnings",
    "grad_norm",
    "is_picklable",
    "is_shared_filesystem",
    "measure_flops",
    "move_data_to_device",
    "rank_zero_deprecation",
    "rank_zero_info",
    "rank_zero_only",
    "rank_zero_warn",
    "suggested_max_num_workers",
]

__getattr__ = not_offered(
    __name__,
    {
        "find_shared_parameters": "tied parameters need no re-tying here (there is no XLA support)",
        "set_shared_parameters": "tied parameters need no re-tying here (there is no XLA support)",
    },
)
