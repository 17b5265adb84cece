"""PL's module path `callbacks.finetuning`: the same objects as `lightning_kernel.trainer.callbacks`."""

from ._finetuning import BackboneFinetuning, BaseFinetuning, multiplicative

__all__ = [
    "BackboneFinetuning",
    "BaseFinetuning",
    "multiplicative",
]
