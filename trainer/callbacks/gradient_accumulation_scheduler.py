"""PL's module path `callbacks.gradient_accumulation_scheduler`: the same objects as `lightning_kernel.trainer.callbacks`."""

from ._grad_accum import GradientAccumulationScheduler

__all__ = [
    "GradientAccumulationScheduler",
]
