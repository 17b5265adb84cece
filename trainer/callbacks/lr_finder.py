"""PL's module path `callbacks.lr_finder`: the same objects as `lightning_kernel.trainer.callbacks`."""

from ._tuner_callbacks import LearningRateFinder

__all__ = [
    "LearningRateFinder",
]
