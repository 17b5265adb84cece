"""A PyTorch Lightning 2.x-compatible Trainer: ``import lightning_kernel.trainer as pl``.

``pl.Trainer``, ``pl.LightningModule``, ``pl.LightningDataModule``, ``pl.Callback``,
``pl.seed_everything``, ``pl.callbacks.*``, ``pl.loggers.*`` and ``pl.tuner.Tuner`` behave as in
PyTorch Lightning, with a fraction of its per-step overhead and import time.
"""

import importlib as _importlib
from typing import Any as _Any

from . import callbacks, loggers, tuner
from ._checkpoint import atomic_save, load_checkpoint
from ._datamodule import LightningDataModule
from ._errors import CheckpointError, MisconfigurationException
from ._module import LightningModule
from ._optim import LightningOptimizer, LRSchedulerConfig
from ._seed import seed_everything
from ._state import RunningStage, TrainerFn, TrainerState, TrainerStatus
from ._trainer import Trainer
from .callbacks import Callback

__version__ = "2.6.0"
"""The PyTorch Lightning release whose API this Trainer follows (code that compares ``pl.__version__``
reads it); the package's own version is ``lightning_kernel._version.__version__``."""

__all__ = [
    "Callback",
    "CheckpointError",
    "LRSchedulerConfig",
    "LightningDataModule",
    "LightningModule",
    "LightningOptimizer",
    "MisconfigurationException",
    "RunningStage",
    "Trainer",
    "TrainerFn",
    "TrainerState",
    "TrainerStatus",
    "atomic_save",
    "callbacks",
    "core",
    "load_checkpoint",
    "loggers",
    "seed_everything",
    "tuner",
    "utilities",
]


_LAZY = frozenset({"accelerators", "core", "demos", "plugins", "profilers", "strategies", "utilities"})


def __getattr__(name: str) -> _Any:
    # PL's other subpackages load on first use (``pl.utilities``): most programs never touch them
    if name in _LAZY:
        return _importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
