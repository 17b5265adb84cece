"""PL's module path `utilities.data`."""

from .._data import has_len, move_data_to_device
from .._logging import extract_batch_size

__all__ = ["extract_batch_size", "has_len", "move_data_to_device"]
