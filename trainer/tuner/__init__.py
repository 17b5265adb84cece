"""Tuning before training: the learning-rate finder and the batch-size finder."""

from ._lr_finder import _LRFinder as LRFinder
from ._tuning import Tuner

__all__ = ["LRFinder", "Tuner"]
