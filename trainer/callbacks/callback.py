"""PL's module path `callbacks.callback`: the same objects as `lightning_kernel.trainer.callbacks`."""

from ._base import Callback

__all__ = [
    "Callback",
]
