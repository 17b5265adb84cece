"""Works as local processes, forked from a forkserver that has the worker runtime imported.

A fresh Python that imports nats-py and the runtime costs a few hundred milliseconds on this kind of
machine; a fork of a server that already did costs a few. The forkserver is started by ``prepare``,
while the kernel does its own start-up, so the first Work starts fast too. Forked (not spawned)
children also inherit the terminal, so what a Work prints appears as it prints it.

Settings (``[executors.local]``): ``work_dir``, where the Works' folders go (default
``<data dir>/works``). A worker's ``ref`` is its pid and the process's start time (a reused pid is
not it). A local worker never outlives its kernel: the forkserver and its workers get SIGTERM when
their parent goes, and a worker that is still there when another kernel takes the run over is
stopped by ``attach`` (SIGTERM: it records why and persists its Paths; killed after
``ATTACH_GRACE_S``), which returns None: the new kernel starts a new attempt only once the old one is
gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import multiprocessing.context
import os
import signal
from dataclasses import replace
from typing import Any

from lightning_kernel._natsserver import die_with_parent
from lightning_kernel.executors import Executor, WorkerExit, WorkerHandle, WorkerSpec, hookimpl
from lightning_kernel.executors._proc import process_start

_WORKER_PREFIX = "lk-worker "
ATTACH_GRACE_S = 15.0


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
    from lightning_kernel._worker import main  # preloaded by the forkserver: already imported

    return main(spec)


_PRELOAD = [
    "lightning_kernel.executors.local._preload",
    "lightning_kernel._worker",
    "lightning_kernel._code",
    "cloudpickle",
    "lightning_kernel.storage",
]


def forkserver_context() -> multiprocessing.context.ForkServerContext:
    """The process-wide forkserver context, with our preload and the ``__main__`` filter."""
    ctx = multiprocessing.get_context("forkserver")
    assert isinstance(ctx, multiprocessing.context.ForkServerContext)
    ctx.set_forkserver_preload(_PRELOAD)
    _install_prep_filter()
    return ctx


def warm() -> None:
    """Start the forkserver now, before the kernel's own start-up: it takes the longest (a fresh
    Python importing the worker runtime, 0.3-0.9 s here), and the first Work waits for it. This
    module imports nothing heavy, so ``run app`` can call it first thing. Started from the main
    thread, so its death signal is tied to the process, not to a short-lived thread."""
    from multiprocessing import forkserver

    forkserver_context()
    forkserver.ensure_running()


class LocalHandle(WorkerHandle):
    """A worker forked by our forkserver. Its life is watched through a pidfd, not only through
    multiprocessing's sentinel: the sentinel is the forkserver's report, and a forkserver that dies
    first would make a live worker look gone (with exit code 255)."""

    def __init__(self, work: str, process: Any) -> None:
        self.work = work
        self.process = process
        self._exit: asyncio.Future[WorkerExit] | None = None
        self._ref = {"pid": process.pid, "start": process_start(process.pid)}
        try:
            self._fd: int | None = os.pidfd_open(process.pid)
        except OSError:  # already gone, or no pidfd (old kernels): the sentinel alone
            self._fd = None

    @property
    def ref(self) -> dict[str, Any]:
        return dict(self._ref)

    @property
    def alive(self) -> bool:
        if self._exit is not None and self._exit.done():
            return False
        return process_start(self.process.pid) == self._ref["start"] and self._ref["start"] != ""

    async def wait(self) -> WorkerExit:
        if self._exit is None:
            self._exit = asyncio.ensure_future(self._wait())
        return await asyncio.shield(self._exit)

    async def _wait(self) -> WorkerExit:
        loop = asyncio.get_running_loop()
        gone: asyncio.Future[None] = loop.create_future()
        fd = self._fd if self._fd is not None else self.process.sentinel

        def ended() -> None:
            loop.remove_reader(fd)
            if not gone.done():
                gone.set_result(None)

        loop.add_reader(fd, ended)
        await gone
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        # The forkserver reports the exit status once it has reaped the worker.
        await asyncio.to_thread(self.process.join, 5)
        code = self.process.exitcode
        if code is None or code == 255:
            return WorkerExit(
                code=None,
                cause="exited",
                message="the worker ended; its exit status was lost with the forkserver",
            )
        if code < 0:
            return WorkerExit(code=None, signal=-code, cause="killed")
        return WorkerExit(code, cause="exited")

    async def terminate(self, grace: float = 5.0) -> None:
        if not self.alive:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.terminate()
        try:
            await asyncio.wait_for(self.wait(), grace)
        except asyncio.TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGUSR1)  # its threads' tracebacks, on its stderr
            await asyncio.sleep(0.2)
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.wait()

    def kill(self, sig: int = signal.SIGKILL) -> None:
        import os

        os.kill(self.process.pid, sig)


class AttachedHandle(WorkerHandle):
    """A local worker that another kernel process started: watched through a pidfd (it is not our
    child, so its exit code is not ours to read)."""

    def __init__(self, work: str, pid: int, start: str) -> None:
        self.work = work
        self.pid = pid
        self._ref = {"pid": pid, "start": start}
        self._fd = os.pidfd_open(pid)
        self._exit: asyncio.Future[WorkerExit] | None = None

    @property
    def ref(self) -> dict[str, Any]:
        return dict(self._ref)

    @property
    def alive(self) -> bool:
        return process_start(self.pid) == self._ref["start"]

    async def wait(self) -> WorkerExit:
        if self._exit is None:
            loop = asyncio.get_running_loop()
            fut: asyncio.Future[WorkerExit] = loop.create_future()

            def ended() -> None:
                loop.remove_reader(self._fd)
                os.close(self._fd)
                if not fut.done():
                    fut.set_result(
                        WorkerExit(code=None, cause="exited", message="the re-attached worker ended")
                    )

            loop.add_reader(self._fd, ended)
            self._exit = fut
        return await asyncio.shield(self._exit)

    async def terminate(self, grace: float = 5.0) -> None:
        if not self.alive:
            return
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(self._fd, signal.SIGTERM)
        try:
            await asyncio.wait_for(self.wait(), grace)
        except asyncio.TimeoutError:
            with contextlib.suppress(ProcessLookupError, OSError):
                signal.pidfd_send_signal(self._fd, signal.SIGKILL)
            await self.wait()


class LocalExecutor(Executor):
    name = "local"

    def __init__(self, work_dir: str = "") -> None:
        self._ctx: multiprocessing.context.ForkServerContext | None = None
        self.work_dir = work_dir
        """Where relative Work folders go; '' leaves them to the worker (its host's work dir)."""

    def _context(self) -> multiprocessing.context.ForkServerContext:
        if self._ctx is None:
            self._ctx = forkserver_context()
        return self._ctx

    async def prepare(self) -> None:
        # Inline, not in a thread: it only spawns the server (~10 ms), and a thread would become the
        # server's parent for its death signal.
        self._context()
        warm()

    async def start(self, spec: WorkerSpec) -> LocalHandle:
        ctx = self._context()
        if self.work_dir and not os.path.isabs(spec.work_root):
            spec = replace(spec, work_root=os.path.join(self.work_dir, spec.work_root))
        process = ctx.Process(
            target=_local_main, args=(spec,), name=f"{_WORKER_PREFIX}{spec.work}", daemon=False
        )
        await asyncio.to_thread(process.start)
        return LocalHandle(spec.work, process)

    async def attach(self, ref: dict[str, Any]) -> WorkerHandle | None:
        pid, start = ref.get("pid"), ref.get("start")
        if not isinstance(pid, int) or not start or process_start(pid) != start:
            return None
        try:
            survivor = AttachedHandle("", pid, str(start))
        except OSError:  # gone meanwhile, or not ours to watch
            return None
        # A local worker belongs to the kernel that forked it: it stops (persisting its Paths, as on
        # SIGTERM) before the new kernel starts another attempt.
        await survivor.terminate(grace=ATTACH_GRACE_S)
        return None


@hookimpl
def lk_executors(config: dict[str, Any]) -> list[Executor]:
    work_dir = config.get("work_dir") or (
        os.path.join(config["data_dir"], "works") if config.get("data_dir") else ""
    )
    return [LocalExecutor(work_dir=os.path.expanduser(str(work_dir)))]
