"""PL's module path `callbacks.batch_size_finder`: the same objects as `lightning_kernel.trainer.callbacks`."""

from ._tuner_callbacks import BatchSizeFinder

__all__ = [
    "BatchSizeFinder",
]
