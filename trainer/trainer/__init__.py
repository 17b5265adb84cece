"""PL's module path `trainer` (``pytorch_lightning.trainer.Trainer``)."""

from .._trainer import Trainer

__all__ = ["Trainer"]
