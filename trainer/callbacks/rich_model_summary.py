"""PL's module path `callbacks.rich_model_summary`: the same objects as `lightning_kernel.trainer.callbacks`."""

from ._rich_summary import RichModelSummary

__all__ = [
    "RichModelSummary",
]
