"""What the lr finder and the batch-size finder share: short trial runs on a throw-away Trainer.

PL runs its trials inside the user's Trainer, rewiring its loops and restoring them from a
checkpoint afterwards. Here each trial runs on a new Trainer built from the user's Trainer
arguments (``trainer._init_kwargs``) with the trial's overrides, so the user's Trainer is never
touched; only the module's weights need restoring, from a copy taken before the first trial.
"""

from __future__ import annotations

import copy
import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from .._errors import MisconfigurationException

# A trial must not write logs, checkpoints, bars or summaries, and must not stop early for reasons
# of the user's run (min/max time), so these are always overridden.
_QUIET = {
    "logger": False,
    "enable_checkpointing": False,
    "enable_progress_bar": False,
    "enable_model_summary": False,
    "profiler": None,
    "max_time": None,
    "min_epochs": None,
    "min_steps": None,
    "num_sanity_val_steps": 0,
    "val_check_interval": None,
    "check_val_every_n_epoch": 1,
}


def trial_trainer(trainer: Any, callbacks: list[Any], **overrides: Any) -> Any:
    """A Trainer with ``trainer``'s arguments, quiet, with ``callbacks`` only, and ``overrides``."""
    kwargs = dict(getattr(trainer, "_init_kwargs", {}) or {})
    kwargs.update(_QUIET)
    kwargs["callbacks"] = callbacks
    kwargs.update(overrides)
    trial = type(trainer)(**kwargs)
    from .._in_work import detach

    detach(trial)  # a trial is no training of the Work's: no state, no checkpoints, no resume
    return trial


def check_single_process(trainer: Any, what: str) -> None:
    world_size = int(getattr(trainer, "world_size", 1) or 1)
    strategy = str((getattr(trainer, "_init_kwargs", {}) or {}).get("strategy", "auto"))
    if world_size > 1 or strategy.startswith("ddp"):
        raise MisconfigurationException(
            f"{what} runs in one process: tune with a Trainer of devices=1 (strategy='auto'), then train "
            f"with the distributed Trainer (this one has world_size={world_size}, strategy={strategy!r})."
        )


@contextmanager
def restored_module(model: Any) -> Iterator[None]:
    """Put back the module's weights, its Trainer reference and its train/eval modes after the trials."""
    weights = copy.deepcopy(model.state_dict())
    modes = [(module, module.training) for module in model.modules()]
    previous_trainer = getattr(model, "_trainer", None)
    try:
        yield
    finally:
        model.load_state_dict(weights)
        for module, mode in modes:
            module.training = mode
        if hasattr(model, "_trainer"):
            # LightningModule's setter also re-points its child LightningModules
            setattr(model, "trainer", previous_trainer)  # noqa: B010


def free_memory(after_failure: bool = False) -> None:
    """Release what a trial left behind before the next one measures memory again.

    A full ``gc.collect()`` costs ~60 ms with torch loaded, so it runs only where it changes the
    outcome: on a GPU (whose cache it lets ``empty_cache`` release) or after a failed trial.
    """
    cuda = torch.cuda.is_available()
    if cuda or after_failure:
        gc.collect()
    if cuda:
        try:
            torch.cuda.empty_cache()
        except RuntimeError:
            pass


def is_oom_error(error: BaseException) -> bool:
    """Whether ``error`` (or what it was raised from) means the batch did not fit in memory."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, RuntimeError) and current.args and isinstance(current.args[0], str):
            message = current.args[0]
            if "CUDA" in message and "out of memory" in message:
                return True
            if "DefaultCPUAllocator: can't allocate memory" in message:
                return True
            if "cuDNN error: CUDNN_STATUS_NOT_SUPPORTED." in message:
                return True
        if isinstance(current, MemoryError):
            return True
        current = current.__cause__ or current.__context__
    return False
