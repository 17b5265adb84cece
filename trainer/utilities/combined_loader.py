"""PL's module path `utilities.combined_loader`."""

from .._data_connector import CombinedLoader

__all__ = ["CombinedLoader"]
