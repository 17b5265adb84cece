"""Works as local processes, forked from a forkserver that has the worker runtime imported.

A fresh Python that imports nats-py and the runtime costs a few hundred milliseconds on this kind of
machine; a fork of a server that already did costs a few. The forkserver is started by ``prepare``,
while the kernel does its own start-up, so the first Work starts fast too. Forked (not spawned)
children also inherit the terminal, so what a Work prints appears as it prints it.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import multiprocessing.context
import signal
from typing import Any

from lightning_kernel._natsserver import die_with_parent
from lightning_kernel._worker import WorkerSpec, main
from lightning_kernel.executors import Executor, WorkerExit, WorkerHandle, hookimpl

_WORKER_PREFIX = "lk-worker "


def _install_prep_filter() -> None:
    """Keep forked workers from re-running ``__main__``.

    multiprocessing makes every child import the parent's main module first (so pickled functions of
    ``__main__`` resolve). A worker's target and spec live in lightning_kernel, and the parent's main
    module is the CLI, a test runner or a user's script that must not run again. The filter applies
    to our workers only, recognised by their process name.
    """
    from multiprocessing import spawn

    original = spawn.get_preparation_data
    if getattr(original, "__lk_filter__", False):
        return

    def get_preparation_data(name: str) -> dict[str, Any]:
        data = original(name)
        if name.startswith(_WORKER_PREFIX):
            data.pop("init_main_from_path", None)
            data.pop("init_main_from_name", None)
        return data

    get_preparation_data.__lk_filter__ = True  # type: ignore[attr-defined]
    spawn.get_preparation_data = get_preparation_data


def _local_main(spec: WorkerSpec) -> int:
    # The forkserver exits with the kernel; its children must not outlive it either.
    die_with_parent()
    return main(spec)


class LocalHandle(WorkerHandle):
    def __init__(self, work: str, process: Any) -> None:
        self.work = work
        self.process = process
        self._exit: asyncio.Future[WorkerExit] | None = None

    @property
    def alive(self) -> bool:
        return bool(self.process.is_alive())

    async def wait(self) -> WorkerExit:
        if self._exit is None:
            loop = asyncio.get_running_loop()
            fut: asyncio.Future[WorkerExit] = loop.create_future()
            sentinel = self.process.sentinel

            def ended() -> None:
                loop.remove_reader(sentinel)
                self.process.join(0)
                code = self.process.exitcode
                result = (
                    WorkerExit(code=None, signal=-code) if code is not None and code < 0 else WorkerExit(code)
                )
                if not fut.done():
                    fut.set_result(result)

            loop.add_reader(sentinel, ended)
            self._exit = fut
        return await asyncio.shield(self._exit)

    async def terminate(self, grace: float = 5.0) -> None:
        if not self.alive:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.terminate()
        try:
            await asyncio.wait_for(self.wait(), grace)
        except asyncio.TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.wait()

    def kill(self, sig: int = signal.SIGKILL) -> None:
        import os

        os.kill(self.process.pid, sig)


class LocalExecutor(Executor):
    name = "local"

    def __init__(self) -> None:
        self._ctx: multiprocessing.context.ForkServerContext | None = None

    def _context(self) -> multiprocessing.context.ForkServerContext:
        if self._ctx is None:
            ctx = multiprocessing.get_context("forkserver")
            assert isinstance(ctx, multiprocessing.context.ForkServerContext)
            ctx.set_forkserver_preload(
                [
                    "lightning_kernel.executors.local._preload",
                    "lightning_kernel._worker",
                    "cloudpickle",
                    "lightning_kernel.storage",
                ]
            )
            _install_prep_filter()
            self._ctx = ctx
        return self._ctx

    async def prepare(self) -> None:
        from multiprocessing import forkserver

        self._context()
        await asyncio.to_thread(forkserver.ensure_running)

    async def start(self, spec: WorkerSpec) -> LocalHandle:
        ctx = self._context()
        process = ctx.Process(
            target=_local_main, args=(spec,), name=f"{_WORKER_PREFIX}{spec.work}", daemon=False
        )
        await asyncio.to_thread(process.start)
        return LocalHandle(spec.work, process)


@hookimpl
def lk_executors() -> list[Executor]:
    return [LocalExecutor()]
