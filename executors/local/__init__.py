"""The local executor: each Work in a process of its own on this machine."""

from ._executor import LocalExecutor, LocalHandle, lk_executors

__all__ = [
    "LocalExecutor",
    "LocalHandle",
    "lk_executors",
]
