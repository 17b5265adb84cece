"""What an executor plugin imports: the hook specification, the marker, the base classes and the spec.

A plugin is a module (or an object) with an ``lk_executors`` hook implementation, registered
through the entry-point group ``lightning_kernel.executors``; it gets its ``[executors.<name>]``
table of ``lightning-kernel.toml`` as ``config``::

    from lightning_kernel.executors import Executor, WorkerHandle, hookimpl

    @hookimpl
    def lk_executors(config):
        return [MyExecutor(**config)]

Importing this package is light: no NATS, no SQL, no worker runtime.
"""

from ._base import Executor, WorkerHandle
from ._hookspecs import hookimpl, hookspec, lk_executors
from ._spec import CAUSES, WorkerExit, WorkerSpec

__all__ = [
    "CAUSES",
    "Executor",
    "WorkerExit",
    "WorkerHandle",
    "WorkerSpec",
    "hookimpl",
    "hookspec",
    "lk_executors",
]
