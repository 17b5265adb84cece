"""PL's module path `callbacks.early_stopping`: the same objects as `lightning_kernel.trainer.callbacks`."""

from ._early_stopping import EarlyStopping, EarlyStoppingReason, log

__all__ = [
    "EarlyStopping",
    "EarlyStoppingReason",
    "log",
]
