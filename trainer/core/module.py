"""PL's module path `core.module`."""

from .._module import LightningModule

__all__ = ["LightningModule"]
