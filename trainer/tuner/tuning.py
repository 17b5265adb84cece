"""PL's module path `tuner.tuning`."""

from ._tuning import Tuner

__all__ = ["Tuner"]
