"""PL's module path `callbacks.on_exception_checkpoint`: the same objects as `lightning_kernel.trainer.callbacks`."""

from ._on_exception import OnExceptionCheckpoint

__all__ = [
    "OnExceptionCheckpoint",
]
