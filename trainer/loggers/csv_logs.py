"""PL's module path `loggers.csv_logs`."""

from ._csv import CSVLogger, ExperimentWriter

__all__ = ["CSVLogger", "ExperimentWriter"]
