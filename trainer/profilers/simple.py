"""PL's module path `profilers.simple`."""

from .._profiler import SimpleProfiler

__all__ = ["SimpleProfiler"]
