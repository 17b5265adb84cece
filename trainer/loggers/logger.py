"""PL's module path `loggers.logger`."""

from ._base import DummyExperiment, DummyLogger, Logger, rank_zero_only

__all__ = ["DummyExperiment", "DummyLogger", "Logger", "rank_zero_only"]
