"""PL's module path `callbacks.lr_monitor`: the same objects as `lightning_kernel.trainer.callbacks`."""

from ._lr_monitor import LearningRateMonitor

__all__ = [
    "LearningRateMonitor",
]
