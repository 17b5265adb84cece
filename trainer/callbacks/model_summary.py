"""PL's module path `callbacks.model_summary`: the same objects as `lightning_kernel.trainer.callbacks`."""

from ._model_summary import ModelSummary

__all__ = [
    "ModelSummary",
]
