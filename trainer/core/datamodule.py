"""PL's module path `core.datamodule`."""

from .._datamodule import LightningDataModule

__all__ = ["LightningDataModule"]
