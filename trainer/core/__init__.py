"""PL's module path `core`: LightningModule and LightningDataModule."""

from .._datamodule import LightningDataModule
from .._module import LightningModule

__all__ = ["LightningDataModule", "LightningModule"]
