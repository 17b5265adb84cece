"""PL's module path `callbacks.model_checkpoint`: the same objects as `lightning_kernel.trainer.callbacks`."""

from ._model_checkpoint import ModelCheckpoint

__all__ = [
    "ModelCheckpoint",
]
