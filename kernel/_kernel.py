"""The kernel: NATS, the SQL store, the recorder, the executors, and the runs it hosts.

``lightning-kernel run app`` embeds one for a single run; ``lightning-kernel serve`` keeps one up for
many. Start-up does its slow parts at once: the embedded nats-server, the schema check and the
executors' warm-up (the local forkserver) run side by side.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import secrets
import time
from typing import Any

from . import _projection as projection
from ._app import LightningApp
from ._bus import Bus
from ._config import Config
from ._events import RunCreated, RunResumed, RunStopRequested, WorkStatusChanged
from ._loop import RunDriver, resumable
from ._natsserver import EmbeddedNats
from ._plugins import Executors, load_executors
from ._recorder import Recorder
from ._status import WorkStageStatus
from ._store import EventStore, load_state
from ._worker import WorkerSpec
from .errors import ConfigError, KernelError


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


class Kernel:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.nats: EmbeddedNats | None = None
        self.bus: Bus | None = None
        self.store: EventStore | None = None
        self.recorder: Recorder | None = None
        self.executors: Executors = Executors()
        self.artifacts: Any = None
        self.runs: dict[str, RunDriver] = {}
        self._lock_fd: int | None = None
        self.nats_url = ""
        self.nats_token: str | None = None
        self._ready: asyncio.Future[None] | None = None

    # -- life cycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        cfg = self.config
        os.makedirs(cfg.data_dir, exist_ok=True)
        if cfg.nats is None:
            self._lock_data_dir()
            nats_task = asyncio.create_task(
                asyncio.to_thread(EmbeddedNats.start, os.path.join(cfg.data_dir, "nats"))
            )
        store_task = asyncio.create_task(asyncio.to_thread(_open_store, cfg.db_url))
        self.executors = load_executors()
        prepare = [asyncio.create_task(ex.prepare()) for ex in self.executors.by_name.values()]
        from lightning_kernel.storage._artifacts import ArtifactStore  # type: ignore[import-not-found,unused-ignore]

        self.artifacts = ArtifactStore(cfg.artifacts_url, cfg.storage_options)
        try:
            if cfg.nats is None:
                self.nats = await nats_task
                self.nats_url, self.nats_token = self.nats.url, self.nats.token
                self._write_kernel_file()
            else:
                self.nats_url, self.nats_token = cfg.nats, cfg.nats_token
            self.bus = await Bus.connect(self.nats_url, self.nats_token, name="lightning-kernel")
            await self.bus.ensure_streams()
        except BaseException:
            store_task.cancel()
            await self.close()
            raise
        # A new run needs only NATS: the store, the recorder and the executors' warm-up finish
        # while the flow takes its first steps (JetStream holds the events until they are recorded).
        self._ready = asyncio.ensure_future(self._finish_start(store_task, prepare))

    async def _finish_start(self, store_task: Any, prepare: list[Any]) -> None:
        assert self.bus is not None
        self.store = await store_task
        self.recorder = Recorder(self.bus, self.store)
        await self.recorder.start()
        await asyncio.gather(*prepare)

    async def ready(self) -> None:
        """Wait until the store and the recorder are up; raises what their start raised."""
        if self._ready is not None:
            await self._ready

    def _lock_data_dir(self) -> None:
        path = os.path.join(self.config.data_dir, "kernel.lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigError(
                f"another kernel is using the data dir {self.config.data_dir}; wait for it, pass another "
                "--data-dir, or run `lightning-kernel serve` there and submit with --server"
            ) from None
        self._lock_fd = fd

    def _write_kernel_file(self) -> None:
        # How `lightning-kernel stop` in another shell reaches this kernel's NATS; 0600: it holds the token.
        path = os.path.join(self.config.data_dir, "kernel.json")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"pid": os.getpid(), "nats": self.nats_url, "token": self.nats_token}, f)

    async def close(self) -> None:
        if self._ready is not None:
            with contextlib.suppress(BaseException):
                await self._ready
        for driver in list(self.runs.values()):
            with contextlib.suppress(Exception):
                await driver.close()
        if self.recorder is not None and self.bus is not None:
            with contextlib.suppress(Exception):
                last = await self.bus.last_seq()
                await self.recorder.wait_recorded(last, timeout=10)
            await self.recorder.stop()
        for ex in self.executors.by_name.values():
            with contextlib.suppress(Exception):
                await ex.close()
        if self.bus is not None:
            await self.bus.close()
        if self.nats is not None:
            await asyncio.to_thread(self.nats.stop)
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(self.config.data_dir, "kernel.json"))
        if self.store is not None:
            self.store.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- runs ---------------------------------------------------------------------------------------

    def _worker_spec(self, run_id: str) -> Any:
        def make(work: str, start_seq: int) -> WorkerSpec:
            return WorkerSpec(
                run_id=run_id,
                work=work,
                nats_url=self.nats_url,
                nats_token=self.nats_token,
                artifacts=self.config.artifacts_url,
                app=self.runs[run_id].state["run"]["app"],
                start_seq=start_seq,
                work_root=os.path.join(self.config.data_dir, "works", run_id, work),
                echo=self.config.echo,
                env=dict(self.config.worker_env),
            )

        return make

    def _driver(self, run_id: str, app: LightningApp) -> RunDriver:
        assert self.bus is not None
        driver = RunDriver(
            run_id,
            app,
            self.bus,
            self.executors,
            self._worker_spec(run_id),
            default_executor=self.config.executor,
            echo=self.config.echo,
        )
        self.runs[run_id] = driver
        return driver

    async def create_run(self, app: LightningApp, app_file: str, name: str | None = None) -> RunDriver:
        import cloudpickle

        assert self.bus is not None
        run_id = new_run_id()
        blob = cloudpickle.dumps(app)
        ref = await asyncio.to_thread(self.artifacts.put_bytes, blob)
        driver = self._driver(run_id, app)
        event = RunCreated(
            name=name or os.path.splitext(os.path.basename(app_file))[0],
            app_file=os.path.abspath(app_file),
            app=ref,
            components=app.describe(),
        )
        seq = await self.bus.publish(run_id, event, "kernel")
        await driver.follow(seq)
        return driver

    async def resume_run(self, run_id: str) -> RunDriver:
        import cloudpickle

        await self.ready()
        assert self.bus is not None and self.store is not None and self.recorder is not None
        await self.recorder.wait_recorded(await self.bus.last_seq(), timeout=30)
        info = await asyncio.to_thread(self.store.run, run_id)
        if info.status in projection.RUN_ENDED:
            raise KernelError(f"run {info.id} already ended ({info.status}); there is nothing to resume")
        state = await asyncio.to_thread(load_state, self.store, info.id)
        app = cloudpickle.loads(await asyncio.to_thread(self.artifacts.get_bytes, state["run"]["app"]))
        driver = self._driver(info.id, app)
        driver.state = state
        events: list[Any] = []
        for work, w in state["works"].items():
            for call_id, call in sorted(w["calls"].items(), key=lambda kv: kv[1]["index"]):
                if call["stage"] == WorkStageStatus.STOPPED and resumable(call):
                    events.append(
                        WorkStatusChanged(
                            work=work, call=call_id, stage=WorkStageStatus.PENDING, reason="resumed"
                        )
                    )
        events.append(RunResumed(reason=""))
        await self.bus.publish_many(info.id, events, "kernel")
        await driver.follow(state["run"]["seq"] + 1)
        return driver

    async def request_stop(self, run_id: str, reason: str = "stopped by request") -> None:
        assert self.bus is not None
        await self.bus.publish(run_id, RunStopRequested(reason=reason), "cli")


def _open_store(url: str) -> EventStore:
    from ._sql import open_store  # type: ignore[import-not-found,unused-ignore]

    store: EventStore = open_store(url)
    return store
