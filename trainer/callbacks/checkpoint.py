"""PL's module path `callbacks.checkpoint`: the same objects as `lightning_kernel.trainer.callbacks`."""

from ._model_checkpoint import Checkpoint

__all__ = [
    "Checkpoint",
]
