"""PL's module path `utilities.exceptions`."""

from .._errors import MisconfigurationException

__all__ = ["MisconfigurationException"]
