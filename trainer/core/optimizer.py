"""PL's module path `core.optimizer`."""

from .._optim import LightningOptimizer

__all__ = ["LightningOptimizer"]
