"""PL's module path `profilers.profiler`."""

from . import Profiler

__all__ = ["Profiler"]
