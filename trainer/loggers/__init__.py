"""Experiment loggers: CSV files and TensorBoard event files, in PL 2.x's folder layout.

The loggers of hosted services are not offered; subclass ``Logger`` to send metrics elsewhere.
"""

from .._not_offered import not_offered
from ._base import DummyLogger, Logger
from ._csv import CSVLogger
from ._tensorboard import TensorBoardLogger

__all__ = ["CSVLogger", "DummyLogger", "Logger", "TensorBoardLogger"]

_SERVICE = "a hosted service's logger is not offered; subclass loggers.Logger (log_metrics, log_hyperparams) to send metrics to it"
__getattr__ = not_offered(
    __name__,
    {name: _SERVICE for name in ("CometLogger", "LitLogger", "MLFlowLogger", "NeptuneLogger", "WandbLogger")},
)
