"""PL's module path `callbacks.model_checkpoint`: the same objects as `lightning_kernel.trainer.callbacks`."""

import os  # noqa: F401  (PL's tests patch `callbacks.model_checkpoint.os.symlink`)

from ._model_checkpoint import ModelCheckpoint

__all__ = [
    "ModelCheckpoint",
]
