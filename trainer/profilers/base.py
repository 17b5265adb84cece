"""PL's module path `profilers.base`."""

from .._profiler import PassThroughProfiler

__all__ = ["PassThroughProfiler"]
