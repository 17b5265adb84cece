"""PL's module path `callbacks.prediction_writer`: the same objects as `lightning_kernel.trainer.callbacks`."""

from ._prediction_writer import BasePredictionWriter, WriteInterval

__all__ = [
    "BasePredictionWriter",
    "WriteInterval",
]
