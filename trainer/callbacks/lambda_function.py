"""PL's module path `callbacks.lambda_function`: the same objects as `lightning_kernel.trainer.callbacks`."""

from ._lambda import LambdaCallback

__all__ = [
    "LambdaCallback",
]
