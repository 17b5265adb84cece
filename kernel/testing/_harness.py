"""The world of one executor contract test: a real nats-server, a file artifact store, a run of the
contract app, and the harness acting as the run's kernel (it holds the run's lease and folds the log)."""

from __future__ import annotations

import asyncio
import os
import secrets
import textwrap
from collections.abc import Callable
from typing import Any

import pytest
from lightning_kernel.executors._spec import WorkerSpec

from .. import _projection as projection
from .._bus import Bus
from .._events import Event, RunCreated, WorkRunRequested
from .._lease import Holder, Leases, new_kernel_id, run_key
from .._natsserver import EmbeddedNats
from .._records import EventRecord
from .._status import WorkStageStatus

ENV_VALUE = "from-the-spec"
LEASE_S = 3.0
"""The lease of the harness's kernel: short, so a test of its expiry takes seconds."""

SHARED_NOTHING_APP = """
import os
from lightning_kernel import LightningApp, LightningFlow, LightningWork
import contract_beside  # a module only the code artifact holds

class Reporter(LightningWork):
    def __init__(self):
        super().__init__(parallel=True)
        self.cwd = ""
        self.home = ""
        self.beside = ""
        self.kernel_root_seen = True
    def run(self, kernel_root=""):
        self.cwd = os.getcwd()
        self.home = os.path.expanduser("~")
        self.beside = contract_beside.WORD + " from " + os.path.dirname(contract_beside.__file__)
        self.kernel_root_seen = any(kernel_root in str(v) for v in os.environ.values())

class Root(LightningFlow):
    def __init__(self):
        super().__init__()
        self.reporter = Reporter()
    def run(self):
        pass

app = LightningApp(Root())
"""


class Harness:
    """NATS, a store, an app, the run's folded state; it starts workers through the executor."""

    def __init__(
        self,
        executor: Any,
        root: str,
        adapt: Callable[[WorkerSpec], WorkerSpec],
        timeout: float,
        app_source: str | None = None,
    ) -> None:
        self.executor = executor
        self.root = root
        self.kernel_root = os.path.join(root, "kernel")
        self.adapt = adapt
        self.timeout = timeout
        self.app_source = app_source
        self.run_id = f"contract-{secrets.token_hex(4)}"
        self.kernel_id = new_kernel_id()
        self.state: projection.State = projection.empty()
        self.handles: list[Any] = []
        self._changed = asyncio.Condition()
        self._server: EmbeddedNats | None = None
        self.bus: Bus | None = None
        self.leases: Leases | None = None
        self._app_ref = ""
        self._code: tuple[str, str, str] = ("", "", "")
        self._artifacts = f"file://{os.path.join(self.kernel_root, 'artifacts')}"
        self._attempts: dict[str, int] = {}

    async def __aenter__(self) -> Harness:
        import cloudpickle
        from lightning_kernel.storage._artifacts import ArtifactStore

        self._server = await asyncio.to_thread(EmbeddedNats.start, os.path.join(self.kernel_root, "nats"))
        self.bus = await Bus.connect(self._server.url, self._server.token)
        await self.bus.ensure_streams()
        self.leases = Leases(self.bus, Holder.this_process(self.kernel_id), lambda *_: None, ttl=LEASE_S)
        await self.leases.start()
        await self.leases.acquire(run_key(self.run_id), f"run {self.run_id}")
        store = ArtifactStore(self._artifacts)
        app = await asyncio.to_thread(self._app, store)
        self._app_ref = store.put_bytes(cloudpickle.dumps(app))
        code, module, entry = self._code
        created = RunCreated(
            name="contract",
            app_file="contract.py",
            app=self._app_ref,
            components=app.describe(),
            code=code,
            module=module,
            entry=entry,
        )
        seq = await self.bus.publish(self.run_id, created, "contract")
        await self.bus.follow(f"lk.{self.run_id}.>", seq, self._on_record)
        await self.executor.prepare()
        return self

    def _app(self, store: Any) -> Any:
        """The contract app; or, with ``app_source``, an app whose folder travels as a code artifact
        and is then removed here, so that a worker can only have it from the artifact."""
        import shutil

        import cloudpickle

        from .._app import load_app
        from .._code import pack
        from ._contract_app import make_app

        if self.app_source is None:
            return make_app()
        folder = os.path.join(self.root, "app")
        os.makedirs(folder)
        with open(os.path.join(folder, "app.py"), "w") as f:
            f.write(textwrap.dedent(self.app_source))
        with open(os.path.join(folder, "contract_beside.py"), "w") as f:
            f.write('WORD = "beside"\n')
        app, module = load_app(os.path.join(folder, "app.py"))
        packed = pack(os.path.join(folder, "app.py"))
        self._code = (store.put_bytes(packed.data), module.__name__, packed.entry)
        cloudpickle.unregister_pickle_by_value(module)
        shutil.rmtree(folder)
        return app

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.gather(*(h.terminate(5.0) for h in self.handles), return_exceptions=True)
        await self.executor.close()
        if self.leases is not None:
            await self.leases.close()
        if self.bus is not None:
            await self.bus.close()
        if self._server is not None:
            await asyncio.to_thread(self._server.stop)

    async def _on_record(self, record: EventRecord) -> None:
        async with self._changed:
            self.state = projection.apply(self.state, record)
            self._changed.notify_all()

    # -- what the tests do --------------------------------------------------------------------------

    def spec(self, work: str, start_seq: int, attempt: int) -> WorkerSpec:
        """The spec the kernel would give: no path of the kernel's machine but the store's URL."""
        assert self._server is not None
        code, module, entry = self._code
        return WorkerSpec(
            run_id=self.run_id,
            work=work,
            attempt=attempt,
            nats_url=self._server.url,
            nats_token=self._server.token,
            artifacts=self._artifacts,
            app=self._app_ref,
            code=code,
            module=module,
            entry=entry,
            kernel=self.kernel_id,
            lease_s=self.leases.ttl if self.leases else LEASE_S,
            start_seq=start_seq,
            work_root=os.path.join(self.run_id, work),
            echo=False,
            env={
                "LK_CONTRACT_VALUE": ENV_VALUE,
                "HOME": os.path.join(self.root, "worker-home"),
                "LK_CODE_CACHE": os.path.join(self.root, "worker-home", "code"),
            },
        )

    async def start(self, work: str) -> Any:
        """Start a worker (the Work's next attempt) through the executor; it takes commands published
        from now."""
        assert self.bus is not None
        attempt = self._attempts[work] = self._attempts.get(work, 0) + 1
        spec = self.spec(work, await self.bus.last_seq() + 1, attempt)
        handle = await asyncio.wait_for(self.executor.start(self.adapt(spec)), self.timeout)
        self.handles.append(handle)
        return handle

    async def publish(self, event: Event) -> int:
        assert self.bus is not None
        return await self.bus.publish(self.run_id, event, "contract")

    async def call(self, work: str, index: int, **kwargs: Any) -> str:
        """Ask ``work`` to run (its ``index``-th call) with ``kwargs``; returns the call id."""
        call = f"c{index}"
        vars_ = self.state["components"][work]["vars"]
        await self.publish(
            WorkRunRequested(work=work, call=call, index=index, args=[], kwargs=kwargs, vars=vars_)
        )
        return call

    async def lose_the_kernel(self) -> None:
        """As if the kernel died: its lease on the run is gone (a dead kernel's lapses by itself)."""
        assert self.leases is not None
        await self.leases.release(run_key(self.run_id))

    def stage(self, work: str, call: str) -> str | None:
        c = self.state["works"][work]["calls"].get(call)
        return None if c is None else str(c["stage"])

    def call_record(self, work: str, call: str) -> dict[str, Any]:
        return dict(self.state["works"][work]["calls"][call])

    def vars(self, work: str) -> dict[str, Any]:
        return dict(self.state["components"][work]["vars"])

    async def until_stage(self, work: str, call: str, stage: str) -> None:
        await self.until(f"call {call} of {work} {stage}", lambda: self.stage(work, call) == stage)

    async def until(self, what: str, predicate: Callable[[], bool], timeout: float | None = None) -> None:
        """Wait until ``predicate()`` holds for the folded state; fail naming ``what`` after the timeout."""

        async def reached() -> None:
            async with self._changed:
                await self._changed.wait_for(predicate)

        limit = self.timeout if timeout is None else timeout
        try:
            await asyncio.wait_for(reached(), limit)
        except asyncio.TimeoutError:
            pytest.fail(f"after {limit} s, still waiting for: {what}; the run's Works: {self.state['works']}")


__all__ = ["ENV_VALUE", "LEASE_S", "SHARED_NOTHING_APP", "Harness", "WorkStageStatus"]
