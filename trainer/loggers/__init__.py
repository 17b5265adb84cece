"""Experiment loggers: CSV files and TensorBoard event files, in PL 2.x's folder layout."""

from ._base import DummyLogger, Logger
from ._csv import CSVLogger
from ._tensorboard import TensorBoardLogger

__all__ = ["CSVLogger", "DummyLogger", "Logger", "TensorBoardLogger"]
