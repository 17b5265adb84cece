"""PL's module path `callbacks.timer`: the same objects as `lightning_kernel.trainer.callbacks`."""

from ._timer import Timer

__all__ = [
    "Timer",
]
