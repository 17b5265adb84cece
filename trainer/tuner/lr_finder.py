"""PL's module path `tuner.lr_finder`."""

from ._lr_finder import _LRFinder

__all__ = ["_LRFinder"]
