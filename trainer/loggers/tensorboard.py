"""PL's module path `loggers.tensorboard`."""

from ._tensorboard import TensorBoardLogger

__all__ = ["TensorBoardLogger"]
