"""What an executor is: it starts, stops, watches and re-attaches the worker of a Work, nothing more.

The worker runtime (state, status, logs, Paths, interruption, the lease on its kernel) is shared by
every executor and lives in the kernel (``python -m lightning_kernel._worker``, or
``lightning_kernel._worker.main(spec)``). An executor gets its settings from the
``[executors.<name>]`` table of ``lightning-kernel.toml`` through ``lk_executors(config)``.
"""

from __future__ import annotations

import abc
import contextvars
from collections.abc import Callable
from typing import Any, ClassVar

from ._spec import WorkerExit, WorkerSpec

PENDING: contextvars.ContextVar[Callable[[str], None] | None] = contextvars.ContextVar(
    "lk_executor_pending", default=None
)
"""Set by the kernel around each ``Executor.start`` (its own task): where ``Executor.pending`` reports."""
ATTACHING: contextvars.ContextVar[WorkerSpec | None] = contextvars.ContextVar(
    "lk_executor_attaching", default=None
)
"""Set by the kernel around each ``Executor.attach``: the spec a new attempt of that Work would get."""


class WorkerHandle(abc.ABC):
    """One worker that an executor started (or re-attached)."""

    work: str

    @property
    @abc.abstractmethod
    def ref(self) -> dict[str, Any]:
        """The worker's identity as JSON: recorded in ``work.worker_started``, and all that
        ``Executor.attach`` gets in a kernel that restarted (a pid and its start time, a host and a
        remote pid, a Ray actor id...)."""

    @abc.abstractmethod
    async def wait(self) -> WorkerExit:
        """Return once the worker has ended, with how it ended (``WorkerExit.cause``)."""

    @abc.abstractmethod
    async def terminate(self, grace: float = 5.0) -> None:
        """Ask the worker to stop (it records why and persists its Paths); kill it after ``grace`` s.
        Returns once it has ended."""

    @property
    @abc.abstractmethod
    def alive(self) -> bool: ...


class Executor(abc.ABC):
    """Hosts workers somewhere: local processes, SSH hosts, a Ray cluster, or a plugin's own place."""

    name: ClassVar[str]

    async def prepare(self) -> None:  # noqa: B027 - optional hook
        """Warm up (start pools, open connections) before the first worker is needed."""

    @abc.abstractmethod
    async def start(self, spec: WorkerSpec) -> WorkerHandle:
        """Start a worker for ``spec`` and return its handle once it is launched (not once it is ready).

        Runs as a task of its own: a slow start blocks neither the flow nor other Works. Raising fails
        the Work's pending calls with the exception's message."""

    def pending(self, reason: str) -> None:
        """Say, from ``start``, that the worker has to wait and why (no free host, a node being
        requested): the Work's calls are ``pending`` with ``reason`` as their status message, which
        the flow reads (``work.status.message``), until the worker runs. May be called again with a
        new reason; does nothing outside ``start``."""
        report = PENDING.get()
        if report is not None:
            report(reason)

    def attaching(self) -> WorkerSpec | None:
        """In ``attach``: the spec that a new attempt of the Work would get from this kernel (its NATS
        URL and token, its artifact store), for an executor that must point a survivor at a kernel that
        restarted. None elsewhere."""
        return ATTACHING.get()

    async def attach(self, ref: dict[str, Any]) -> WorkerHandle | None:
        """The handle of the worker that ``ref`` names if it is still alive, else None.

        A restarted kernel calls this for each worker the log says was running; a worker that is
        re-attached carries on, one that is not is fenced (its attempt superseded) before a new one
        starts. The default re-attaches nothing."""
        return None

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release what ``prepare`` took. Workers are terminated by the kernel before this."""
