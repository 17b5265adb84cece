"""What an executor plugin imports: the hook specification, the marker, and the base classes.

A plugin is a module (or an object) with an ``lk_executors`` hook implementation, registered
through the entry-point group ``lightning_kernel.executors``::

    from lightning_kernel.executors import Executor, WorkerHandle, hookimpl

    @hookimpl
    def lk_executors():
        return [MyExecutor()]
"""

from lightning_kernel._worker import WorkerSpec

from ._base import Executor, WorkerExit, WorkerHandle
from ._hookspecs import hookimpl, hookspec, lk_executors

__all__ = [
    "Executor",
    "WorkerExit",
    "WorkerHandle",
    "WorkerSpec",
    "hookimpl",
    "hookspec",
    "lk_executors",
]
