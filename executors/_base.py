"""What an executor is: it starts, stops and watches the worker of a Work, and nothing more.

The worker runtime (state, status, logs, Paths, interruption) is shared by every executor and lives
in the kernel (``python -m lightning_kernel._worker``, or ``lightning_kernel._worker.main(spec)``).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import ClassVar

from lightning_kernel._worker import WorkerSpec


@dataclass(frozen=True)
class WorkerExit:
    """How a worker ended: ``code`` (0 is a clean exit), or ``signal`` when a signal killed it."""

    code: int | None
    signal: int | None = None

    @property
    def clean(self) -> bool:
        return self.code == 0

    def describe(self) -> str:
        if self.signal is not None:
            import signal as _signal

            try:
                name = _signal.Signals(self.signal).name
            except ValueError:
                name = str(self.signal)
            return f"the worker process was killed by {name}"
        return f"the worker process exited with code {self.code}"


class WorkerHandle(abc.ABC):
    """One running worker."""

    work: str

    @abc.abstractmethod
    async def wait(self) -> WorkerExit:
        """Return once the worker has ended."""

    @abc.abstractmethod
    async def terminate(self, grace: float = 5.0) -> None:
        """Ask the worker to stop (it records why and persists its Paths); kill it after ``grace`` s."""

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
        """Start a worker for ``spec`` and return its handle once it is launched (not once it is ready)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release what ``prepare`` took. Workers are terminated by the kernel before this."""
