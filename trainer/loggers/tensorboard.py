"""PL's module path `loggers.tensorboard`."""

import importlib.util

from ._tensorboard import TensorBoardLogger

_TENSORBOARD_AVAILABLE = importlib.util.find_spec("tensorboard") is not None
"""Whether the ``tensorboard`` package is installed (the default logger is then a TensorBoardLogger)."""

__all__ = ["TensorBoardLogger"]
