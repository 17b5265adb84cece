"""PL's module path `trainer.trainer`."""

from .._trainer import Trainer

__all__ = ["Trainer"]
