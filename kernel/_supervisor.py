"""The workers of one run: numbered attempts, started as tasks, watched, re-attached or fenced.

Every worker is an attempt of its Work, numbered from the log (``projection.new_attempt``), and its
life is recorded: ``work.worker_started {attempt, executor, ref}`` once the executor launched it,
``work.worker_exited {attempt, cause, code, signal}`` once it is over. Starts run as tasks: a slow
executor blocks neither the flow nor the other Works, and one that raises fails the Work's pending
calls with its message. A kernel that takes over a run whose log says a worker is running asks that
worker's executor to re-attach it (``Executor.attach(ref)``); one that cannot be re-attached is
fenced (``worker_exited cause=lost``) before anything else starts, so there are never two copies of a
Work: the fold ignores a fenced attempt's events, and the worker itself stops when it sees the fence.

A worker whose machine was taken away (``cause=preempted``: a spot reclaim, a Ray node lost) is no
failure: its unfinished calls go back to ``pending`` (reason ``spot_retrival``, as Lightning App named
it) and a new attempt starts from the oldest of them with the Work's last recorded state (its Paths
are restored before ``run()``), up to its executor's ``max_interruptions``; past them the calls fail
with that reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from lightning_kernel.executors._base import ATTACHING, PENDING
from lightning_kernel.executors._spec import WorkerExit, WorkerSpec

from . import _projection as projection
from ._events import Event, WorkerExited, WorkerStarted, WorkStatusChanged, work_token
from ._status import WorkFailureReasons, WorkPendingReason, WorkStageStatus

log = logging.getLogger(__name__)

SpecFactory = Callable[[str, int, int], WorkerSpec]
"""``(work, start seq, attempt) -> WorkerSpec``."""


class Supervisor:
    def __init__(
        self,
        run_id: str,
        works: dict[str, Any],
        executors: Any,
        default_executor: str,
        make_spec: SpecFactory,
        publish: Callable[[list[Event]], Awaitable[None]],
        state: Callable[[], projection.State],
        caught_up: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self.run_id = run_id
        self.works = works
        self.executors = executors
        self.default_executor = default_executor
        self.make_spec = make_spec
        self.publish = publish
        self.state = state
        self.caught_up = caught_up
        """Waits until the state holds the newest event of a subject (a worker's last events)."""
        self.handles: dict[str, Any] = {}
        self.attempts: dict[str, int] = {}
        self._next: dict[str, int] = {}
        self._starting: dict[str, asyncio.Task[None]] = {}
        self._waiting: dict[str, str] = {}
        """Why a Work's worker has to wait, while its executor says so (``Executor.pending``)."""
        self._watching: set[asyncio.Task[None]] = set()
        self._executor_of: dict[str, Any] = {}
        """The executor of each Work's newest worker (its ``max_interruptions``)."""
        self.ending = False
        """Set once the run is ending or the kernel lets go of it: no worker starts any more."""

    def alive(self, name: str) -> bool:
        handle = self.handles.get(name)
        return handle is not None and handle.alive

    def starting(self, name: str) -> bool:
        return name in self._starting

    def ensure(self, name: str, seq: int, resume_vars: dict[str, Any] | None = None) -> None:
        """Start a worker for ``name`` reading commands from ``seq``, unless one is alive or starting."""
        if name in self._starting and name in self._waiting:
            self._pending(name, self._waiting[name])
        if self.ending or self.alive(name) or name in self._starting:
            return
        task = asyncio.ensure_future(self._start(name, seq, resume_vars))
        self._starting[name] = task
        task.add_done_callback(lambda _: (self._starting.pop(name, None), self._waiting.pop(name, None)))

    def _attempt(self, name: str) -> int:
        attempt = max(projection.new_attempt(self.state(), name), self._next.get(name, 1))
        self._next[name] = attempt + 1
        return attempt

    async def _start(self, name: str, seq: int, resume_vars: dict[str, Any] | None) -> None:
        work = self.works[name]
        executor_name = work.cloud_compute.executor or self.default_executor
        attempt = self._attempt(name)
        PENDING.set(lambda why: self._pending(name, why))  # this task's own: Executor.pending()
        try:
            executor = self.executors.get(executor_name)
            self._executor_of[name] = executor
            spec = self.make_spec(name, seq, attempt)
            spec.resume_vars = resume_vars
            handle = await executor.start(spec)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            reason = (
                f"executor {executor_name!r} could not start a worker for {name}: {type(exc).__name__}: {exc}"
            )
            log.warning("%s", reason)
            await self._fail_unfinished(name, "ExecutorError", reason)
            return
        if self.ending:
            # The run ended while the worker started: it must not write after the end.
            await handle.terminate(2.0)
        self._adopt(name, handle, attempt)
        await self.publish(
            [WorkerStarted(work=name, attempt=attempt, executor=executor.name, ref=handle.ref)]
        )

    def _adopt(self, name: str, handle: Any, attempt: int) -> None:
        self.handles[name] = handle
        self.attempts[name] = attempt
        task = asyncio.ensure_future(self._watch(name, handle, attempt))
        self._watching.add(task)
        task.add_done_callback(self._watching.discard)

    async def _watch(self, name: str, handle: Any, attempt: int) -> None:
        try:
            exit_: WorkerExit = await handle.wait()
        except Exception as exc:  # the executor lost sight of it
            exit_ = WorkerExit(code=None, cause="lost", message=f"watching the worker failed: {exc}")
        if self.handles.get(name) is handle:
            del self.handles[name]
        events: list[Event] = [
            WorkerExited(
                work=name,
                attempt=attempt,
                cause=exit_.cause,
                code=exit_.code,
                signal=exit_.signal,
                message=exit_.describe(),
            )
        ]
        if not self.ending and self.caught_up is not None:
            # Its last events (a final status) were acknowledged before it exited: fold them first.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.caught_up(f"lk.{self.run_id}.evt.{work_token(name)}"), 5)
        state = self.state()
        relaunch: int | None = None
        if not self.ending and state:
            calls = projection.unfinished_calls(state, name)
            stage = WorkStageStatus.STOPPED if exit_.clean else WorkStageStatus.FAILED
            reason = "WorkerExited" if exit_.clean else "WorkerDied"
            message = exit_.describe()
            if exit_.cause == "preempted":
                limit = int(getattr(self._executor_of.get(name), "max_interruptions", 0) or 0)
                n = int(state["works"][name].get("interruptions", 0)) + 1
                reason = WorkFailureReasons.SPOT_RETRIVAL
                if calls and n <= limit:
                    stage, relaunch = WorkStageStatus.PENDING, min(c["seq"] for c in calls)
                    message = f"{message}; relaunching it (interruption {n} of at most {limit})"
                else:
                    stage = WorkStageStatus.FAILED
                    message = f"{message}; interrupted {n} times (max_interruptions = {limit})"
            events.extend(
                WorkStatusChanged(work=name, call=c["call_id"], stage=stage, reason=reason, message=message)
                for c in calls
            )
        with contextlib.suppress(Exception):
            await self.publish(events)
        if relaunch is not None and not self.ending:
            log.info("%s: %s", name, exit_.describe())
            self.ensure(name, relaunch, self.state()["components"][name]["vars"])

    def _pending(self, name: str, why: str) -> None:
        """The executor's word that the worker of ``name`` waits: its unfinished calls say why."""
        events: list[Event] = [
            WorkStatusChanged(
                work=name,
                call=c["call_id"],
                stage=WorkStageStatus.PENDING,
                reason=WorkPendingReason.REQUESTING_RESOURCE,
                message=why,
            )
            for c in projection.unfinished_calls(self.state(), name)
            if c.get("stage", WorkStageStatus.PENDING) == WorkStageStatus.PENDING and c.get("message") != why
        ]
        self._waiting[name] = why  # calls requested while the start still waits get it too
        if events and not self.ending:
            task = asyncio.ensure_future(self.publish(events))
            self._watching.add(task)
            task.add_done_callback(self._watching.discard)

    async def _fail_unfinished(self, name: str, reason: str, message: str) -> None:
        state = self.state()
        events: list[Event] = [
            WorkStatusChanged(
                work=name, call=c["call_id"], stage=WorkStageStatus.FAILED, reason=reason, message=message
            )
            for c in projection.unfinished_calls(state, name)
        ]
        if events:
            await self.publish(events)

    async def take_over(self) -> None:
        """For each worker that the log says is running (a previous kernel's): re-attach it through its
        executor, or fence it. Called before the run goes on, so nothing starts beside a survivor."""
        state = self.state()
        fenced: list[Event] = []
        for name, w in state["works"].items():
            worker = w.get("worker")
            if not worker or worker.get("state") != "running" or name not in self.works:
                continue
            attempt = int(worker["attempt"])
            self._next[name] = max(self._next.get(name, 1), attempt + 1)
            handle = None
            try:
                executor = self._executor_of[name] = self.executors.get(worker["executor"])
                token = ATTACHING.set(self.make_spec(name, 0, attempt))
                try:
                    handle = await asyncio.wait_for(executor.attach(dict(worker.get("ref") or {})), 30)
                finally:
                    ATTACHING.reset(token)
            except Exception as exc:
                log.info("re-attaching %s (attempt %s) failed: %s", name, attempt, exc)
            if handle is not None and handle.alive:
                handle.work = name
                self._adopt(name, handle, attempt)
                await self.publish(
                    [
                        WorkerStarted(
                            work=name,
                            attempt=attempt,
                            executor=worker["executor"],
                            ref=handle.ref,
                            attached=True,
                        )
                    ]
                )
                continue
            fenced.append(
                WorkerExited(
                    work=name,
                    attempt=attempt,
                    cause="lost",
                    message="its kernel went away and it could not be re-attached; fenced",
                )
            )
        if fenced:
            await self.publish(fenced)

    async def stop(self, name: str, grace: float = 5.0) -> None:
        """Give the worker of ``name`` ``grace`` s to stop by itself (a stop request), then terminate it."""
        handle = self.handles.get(name)
        if handle is None:
            return
        try:
            await asyncio.wait_for(handle.wait(), grace)
        except asyncio.TimeoutError:
            await handle.terminate(grace=2.0)

    async def shutdown(self, grace: float = 5.0) -> None:
        """Stop every worker (those starting too) and wait until their exits are recorded."""
        self.ending = True
        await asyncio.gather(*self._starting.values(), return_exceptions=True)
        await asyncio.gather(
            *(h.terminate(grace) for h in list(self.handles.values())), return_exceptions=True
        )
        await asyncio.gather(*list(self._watching), return_exceptions=True)
