"""The kernel: NATS, the SQL store, the recorder, the executors, the leases, and the runs it hosts.

``lightning-kernel run app`` embeds one for a single run; ``lightning-kernel serve`` keeps one up for
many. Start-up does its slow parts at once: the embedded nats-server, the schema check and the
executors' warm-up (the local forkserver) run side by side; a new run waits only for NATS and for
the database to be checked against the stream (``StreamMismatch`` before anything runs).

A kernel drives a run only under that run's lease (``_lease``), so two kernels never drive one run;
it records into its database only under the database's recorder lease. What can fail under it ends
cleanly: NATS lost (the embedded server killed, an external one gone) or a database that keeps
refusing to record is a ``KernelFault`` within a few seconds; the runs are interrupted with that cause,
and ``resume`` carries on once the service is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from lightning_kernel.executors._spec import WorkerSpec

from . import _projection as projection
from ._app import LightningApp
from ._bus import Bus, StreamState
from ._code import WARN_BYTES, Code, describe_size, import_app, load_run_app, pack, unpack
from ._config import Config
from ._datadir import DataDir, EarlyStart, shown_url
from ._events import EVENT_STREAM, RunCreated, RunForked, RunResumed, RunStopRequested
from ._lease import Holder, Leases, holder_of, new_kernel_id, run_key
from ._loop import RunDriver
from ._natsserver import EmbeddedNats, Spawned
from ._plugins import Executors, load_executors
from ._recorder import Recorder
from ._store import EventStore, load_state
from .errors import KernelError, KernelFault, LeaseHeld

log = logging.getLogger(__name__)

"""The id of the data dir's database, and where it starts in the streams, until it is bound to them."""

NATS_LOST_AFTER_S = float(os.environ.get("LK_NATS_LOST_AFTER_S", "1.5"))
"""Seconds without a connection to NATS before the kernel gives up on it (it reconnects meanwhile)."""


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


class Kernel:
    def __init__(self, config: Config, early: EarlyStart | None = None) -> None:
        self.config = config
        self.early = early
        """The data dir and nats-server that ``run app`` started before importing the kernel."""
        self.id = new_kernel_id()
        self.nats: EmbeddedNats | None = None
        self.bus: Bus | None = None
        self.store: EventStore | None = None
        self.recorder: Recorder | None = None
        self.leases: Leases | None = None
        self.executors: Executors = Executors()
        self.artifacts: Any = None
        self.runs: dict[str, RunDriver] = {}
        self.streams: dict[str, StreamState] = {}
        self.data = early.data if early is not None else DataDir(config.data_dir, config.db)
        self.nats_url = ""
        self.nats_token: str | None = None
        self._ready: asyncio.Future[None] | None = None
        self._store_ready: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.fault: asyncio.Future[KernelFault] | None = None
        """Set when a service failed under the kernel; every hosted run is interrupted with it."""
        self._monitor: asyncio.Task[None] | None = None
        self._store_gate = asyncio.Event()
        self._spawned: Spawned | None = None
        self.start_task: asyncio.Future[None] | None = None
        """``start()`` begun as a task, for those that do other work while it runs (``started()``)."""
        self._db_id: str | None = None
        """The database's id as the quick check read it (or made it, for a fresh one)."""
        self._closing = False
        self.nats_gone = False

    # -- life cycle ---------------------------------------------------------------------------------

    async def start(self, defer_store: bool = False) -> None:
        """Start NATS (or connect to it), the leases and the executors' warm-up.

        ``defer_store``: the SQL store opens once the first run is created (``run app``), not now: on
        a fresh data dir nothing needs it before the recorder does, and importing SQLAlchemy and
        making the schema (0.2-0.5 s here, in a thread that competes for the GIL) would otherwise sit
        on the way to the flow's first iteration. The database is still checked against the streams
        first, cheaply, for the SQLite of the data dir (``DataDir.quick_check``)."""
        cfg = self.config
        self._loop = asyncio.get_running_loop()
        self.fault = self._loop.create_future()
        self._store_gate = asyncio.Event()
        if not defer_store:
            self._store_gate.set()
        early = self.early
        if early is None:
            self.data.secure()
            if cfg.nats is None:
                self.data.lock()
        if cfg.nats is None:
            spawned = early.nats if early is not None and early.nats is not None else None
            if spawned is None:
                spawned = EmbeddedNats.spawn(os.path.join(cfg.data_dir, "nats"))
            self._spawned = spawned
            nats_task = asyncio.create_task(asyncio.to_thread(spawned.ready))
        store_task = asyncio.create_task(self._open_store_when_asked())
        self.executors = load_executors(tables=cfg.executors, data_dir=cfg.data_dir)
        prepare = [asyncio.create_task(ex.prepare()) for ex in self.executors.by_name.values()]
        from lightning_kernel.storage._artifacts import ArtifactStore  # type: ignore[import-not-found,unused-ignore]

        self.artifacts = ArtifactStore(cfg.artifacts_url, cfg.storage_options)
        try:
            if cfg.nats is None:
                self.nats = await nats_task
                self.nats_url, self.nats_token = self.nats.url, self.nats.token
                self.data.write_kernel_file(self.nats_url, self.nats_token, self.id)
                self._watch_embedded_nats(self.nats)
            else:
                self.nats_url, self.nats_token = cfg.nats, cfg.nats_token
            # The embedded server was just seen to be ready: no need to probe it first.
            self.bus = await Bus.connect(
                self.nats_url, self.nats_token, name="lightning-kernel", probe=cfg.nats is not None
            )
            # A stream that stopped acknowledging (its disk full) is NATS lost: nothing can be published.
            self.bus.on_give_up.append(
                lambda fault: self.raise_fault(KernelFault(str(fault)), nats_gone=True)
            )
            self.leases = Leases(
                self.bus,
                Holder.this_process(self.id, cfg.data_dir),
                self._lease_lost,
                renew_on=(self.nats_url, self.nats_token),
            )
            self.bus.guard = self._guard_publish
            # Where a database new to these streams starts: before this kernel publishes anything.
            self.streams, _ = await asyncio.gather(self.bus.ensure_streams(), self.leases.start())
        except BaseException:
            store_task.cancel()
            for task in prepare:
                task.cancel()
            await self.close()
            raise
        self._monitor = asyncio.create_task(self._watch_nats(), name="nats-monitor")
        self._store_ready = asyncio.ensure_future(self._open_recorder(store_task))
        # A new run needs only NATS and a checked database: the executors' warm-up finishes while the
        # flow takes its first steps (JetStream holds the events until they are recorded).
        self._ready = asyncio.ensure_future(self._finish_start(prepare))

    async def started(self) -> None:
        """Wait for ``start()`` when it was begun as ``start_task``; raises what it raised."""
        if self.start_task is not None:
            await asyncio.shield(self.start_task)

    async def _open_store_when_asked(self) -> EventStore:
        await self._store_gate.wait()
        return await asyncio.to_thread(_open_store, self.config.db_url)

    def _where(self) -> str:
        return f"database {shown_url(self.config.db_url)} (NATS {self.nats_url})"

    async def _open_recorder(self, store_task: Any) -> None:
        assert self.bus is not None
        self.store = await store_task
        self.data.private_database()
        since = {name: s.last_seq for name, s in self.streams.items()}
        pending = self.data.read_pending(self.streams)
        if pending is not None:
            since = {name: int(s["since"]) for name, s in pending["streams"].items()}
        self.recorder = Recorder(
            self.bus,
            self.store,
            leases=self.leases,
            since=since,
            on_fatal=self.raise_fault,
            where=self._where(),
            db_id=self._db_id or (pending["db_id"] if pending else None),
        )
        await self.recorder.start()
        if pending is not None and not self.recorder.standby:
            self.data.bound()

    async def recorded_all(self, timeout: float = 60.0) -> str | None:
        """Wait until every event and log line in the streams is in the database: None once they
        are, else why not (the database failing, or still behind after ``timeout`` s)."""
        try:
            await self.store_ready()  # a run may end before the database it needs is open
        except Exception as exc:
            return str(exc) or type(exc).__name__
        if self.recorder is None or self.bus is None:
            return "the database was not opened"
        try:
            events = await asyncio.wait_for(self.bus.last_seq(), 5)
            logs = await asyncio.wait_for(self.bus.last_log_seq(), 5)
        except Exception as exc:
            return f"NATS did not say where its streams end ({exc or type(exc).__name__})"
        recorder = self.recorder
        if await recorder.wait_recorded(events, timeout) and await recorder.wait_logs_recorded(logs, timeout):
            return None
        if recorder.error is not None:
            return f"cannot record into {recorder.where}: {recorder.error}"
        return f"{recorder.where} was still recording after {timeout:.0f} s"

    async def _finish_start(self, prepare: list[Any]) -> None:
        assert self._store_ready is not None
        await self._store_ready
        await asyncio.gather(*prepare)

    async def ready(self) -> None:
        """Wait until the store, the recorder and the executors are up; raises what their start raised."""
        if self._ready is not None:
            await self._ready

    async def store_ready(self) -> None:
        """Wait until the database is open, checked against the streams and recorded into."""
        self._store_gate.set()
        if self._store_ready is not None:
            await self._store_ready

    async def _database_checked(self) -> str:
        """The id of the database to name in a new run, once it is known to fit the streams."""
        if self._db_id is None and not self._store_gate.is_set():
            self._db_id = self.data.quick_check(self.streams, self._where())
        if self._db_id is None or self._store_gate.is_set():
            await self.store_ready()
            assert self.recorder is not None
            return self.recorder.db_id
        return self._db_id

    @property
    def faulted(self) -> bool:
        return self.fault is not None and self.fault.done() and not self.fault.cancelled()

    def raise_fault(self, fault: KernelFault, nats_gone: bool = False) -> None:
        """Interrupt everything this kernel hosts with ``fault`` (callable from any thread);
        ``nats_gone`` when NATS itself is what failed."""

        def set_it() -> None:
            if self.fault is not None and not self.fault.done() and not self._closing:
                self.nats_gone = self.nats_gone or nats_gone
                self.fault.set_result(fault)
                for driver in list(self.runs.values()):
                    driver.abort(fault)
                if self.nats_gone and self.bus is not None:
                    self.bus.give_up(fault)

        if self._loop is not None:
            self._loop.call_soon_threadsafe(set_it)

    def _guard_publish(self, subject: str) -> None:
        """Refuse an event of a run this kernel drives once its lease on the run may have lapsed:
        another kernel may drive the run by now, and the log must not get the events of two."""
        parts = subject.split(".", 2)
        run_id = parts[1] if len(parts) > 2 else ""
        if run_id in self.runs and self.leases is not None and not self.leases.fresh(run_key(run_id)):
            age = self.leases.age(run_key(run_id))
            since = f"last renewed {age:.0f} s ago" if age != float("inf") else "lost"
            raise KernelFault(
                f"this kernel may no longer hold run {run_id} (its lease, of {self.leases.ttl:.0f} s, was "
                f"{since}: was this process paused?); it publishes nothing more for the run"
            )

    def _lease_lost(self, key: str, why: str) -> None:
        run_id = key.removeprefix("run.")
        driver = self.runs.get(run_id)
        if driver is not None:
            driver.abort(
                KernelFault(f"this kernel lost its lease on run {run_id} ({why}): it stops driving it")
            )
        elif key.startswith("recorder."):
            self.raise_fault(KernelFault(f"this kernel lost its lease on recording ({why})"))

    def _watch_embedded_nats(self, server: EmbeddedNats) -> None:
        def wait() -> None:
            code = server.process.wait()
            if not self._closing:
                how = (
                    f"was killed by signal {-code}"
                    if code < 0
                    else f"exited with code {code}; {server.tail()}"
                )
                self.raise_fault(KernelFault(f"the embedded nats-server {how}"), nats_gone=True)

        threading.Thread(target=wait, name="nats-server-watch", daemon=True).start()

    async def _watch_nats(self) -> None:
        assert self.bus is not None
        bus = self.bus
        while True:
            await bus.connection_changed()
            lost_at = bus.lost_at
            if lost_at is None:
                continue
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(bus.reconnected(), NATS_LOST_AFTER_S)
            if bus.lost_at is not None and not self._closing:
                reason = bus.lost_reason or "disconnected"
                self.raise_fault(KernelFault(f"lost NATS at {bus.shown_url}: {reason}"), nats_gone=True)
                return

    async def close(self) -> None:
        self._closing = True
        if self._store_ready is not None and not self._store_gate.is_set():
            # Stopped before any run asked for the store (SIGTERM during start-up): it was never
            # opened, and nothing would ever open it now; waiting for it would only wait out the 10 s.
            self._store_ready.cancel()
        if self._ready is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(self._ready), 10)
        for driver in list(self.runs.values()):
            with contextlib.suppress(Exception):
                await driver.close()
        if self._monitor is not None:
            self._monitor.cancel()
        faulted = self.faulted
        if self.nats_gone and self.bus is not None:
            self.bus.give_up(KernelFault("NATS is gone"))
        if self.recorder is not None and self.bus is not None and not faulted:
            with contextlib.suppress(Exception):
                # Nothing of a run may be left unrecorded when its kernel says it is done: its events
                # and every line it printed.
                # Not while the database refuses writes: they wait in NATS for the next kernel then.
                last = await asyncio.wait_for(self.bus.last_seq(), 5)
                await self.recorder.wait_recorded(last, timeout=10, unless_failing=True)
                logs = await asyncio.wait_for(self.bus.last_log_seq(), 5)
                await self.recorder.wait_logs_recorded(logs, timeout=10, unless_failing=True)
        if self.recorder is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.recorder.stop(), 5)
        if self.leases is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.leases.close(), 5)
        for ex in self.executors.by_name.values():
            with contextlib.suppress(Exception):
                await ex.close()
        if self.bus is not None:
            await self.bus.close()
        if self.nats is not None:
            await asyncio.to_thread(self.nats.stop)
            self.data.remove_kernel_file()
        elif self._spawned is not None:
            self._spawned.kill()  # started, never ready (the start failed or was cut short)
        if self.store is not None:
            self.store.close()
        self.data.unlock()

    # -- runs ---------------------------------------------------------------------------------------

    def _worker_spec(self, run_id: str) -> Callable[[str, int, int], WorkerSpec]:
        def make(work: str, start_seq: int, attempt: int) -> WorkerSpec:
            run = self.runs[run_id].state["run"]
            compute = self.runs[run_id].app.works[work].cloud_compute.to_dict()
            assert self.leases is not None
            return WorkerSpec(
                run_id=run_id,
                work=work,
                attempt=attempt,
                nats_url=self.nats_url,
                nats_token=self.nats_token,
                artifacts=self.config.artifacts_url,
                # A Work the flow added while the app ran comes pickled on its own.
                app=self.runs[run_id].state["components"][work].get("artifact") or run["app"],
                code=run.get("code", ""),
                module=run.get("module", ""),
                entry=run.get("entry", ""),
                kernel=self.id,
                lease_s=self.leases.ttl,
                start_seq=start_seq,
                work_root=os.path.join(run_id, work),
                echo=self.config.echo,
                env={**self.config.worker_env, **run.get("env", {})},
                argv=list(run.get("argv", [])),
                compute=compute,
                executor=compute.get("executor") or self.config.executor,
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
            artifacts=self.artifacts,
        )
        self.runs[run_id] = driver
        return driver

    async def _take_lease(self, run_id: str) -> None:
        assert self.leases is not None
        await self.leases.acquire(run_key(run_id), f"run {run_id}")

    async def pack_code(self, app_file: str, module: Any) -> Code:
        """Pack the folder of ``app_file`` (less the data dir) as a code artifact; the app's classes
        will be pickled by name, and workers import ``module`` from their copy of the folder."""
        import cloudpickle

        packed = await asyncio.to_thread(pack, app_file, [self.config.data_dir])
        if packed.size > WARN_BYTES:
            log.warning("%s", describe_size(packed))
        ref = await asyncio.to_thread(self.artifacts.put_bytes, packed.data)
        if module.__name__ in cloudpickle.list_registry_pickle_by_value():
            cloudpickle.unregister_pickle_by_value(module)
        # Workers on this machine find the folder unpacked (ten starting at once would each unpack it).
        threading.Thread(target=unpack, args=(packed.data, ref), daemon=True, name="lk-unpack").start()
        return Code(ref, module.__name__, packed.entry)

    async def create_run(
        self,
        app: LightningApp,
        app_file: str,
        name: str | None = None,
        code: Code | None = None,
        argv: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> RunDriver:
        """Start a run of ``app``; with ``code`` (``pack_code``), its workers import the app's files
        (run with ``argv``), and run with ``env`` set."""
        import cloudpickle

        assert self.bus is not None
        db_id = await self._database_checked()
        run_id = new_run_id()
        blob = cloudpickle.dumps(app)
        ref = await asyncio.to_thread(self.artifacts.put_bytes, blob)
        await self._take_lease(run_id)
        driver = self._driver(run_id, app)
        event = RunCreated(
            name=name or os.path.splitext(os.path.basename(app_file))[0],
            app_file=os.path.abspath(app_file),
            app=ref,
            components=app.describe(),
            code=code.ref if code else "",
            module=code.module if code else "",
            entry=code.entry if code else "",
            db=db_id,
            argv=list(argv or []),
            env=dict(env or {}),
        )
        seq = await self.bus.publish(run_id, event, "kernel")
        await driver.follow(seq)
        self._store_gate.set()  # the run is on its way: now the store may open and record it
        return driver

    async def caught_up(self) -> None:
        """Wait until every event in the stream is recorded (so ``latest`` and statuses are current)."""
        await self.store_ready()
        assert self.bus is not None and self.recorder is not None
        await self.recorder.wait_recorded(await self.bus.last_seq(), timeout=30)

    async def resume_run(self, run_id: str) -> RunDriver:
        await self.caught_up()
        assert self.bus is not None and self.store is not None
        info = await asyncio.to_thread(self.store.run, run_id)
        if info.status in projection.RUN_ENDED:
            raise KernelError(f"run {info.id} already ended ({info.status}); there is nothing to resume")
        await self._take_lease(info.id)
        try:
            state = await asyncio.to_thread(load_state, self.store, info.id)
            # Its Works read their commands from the stream again: all of the run must be there.
            first = (await self.bus.stream_state(EVENT_STREAM)).first_seq
            began = (await asyncio.to_thread(self.store.events, info.id, 0, None, 1))[0].seq
            if began < first:
                raise KernelError(
                    f"run {info.id} cannot resume: its events from seq {began} are no longer all in the "
                    f"stream (it starts at seq {first}; it was reset or adopted); its history stays readable"
                )
            app = await asyncio.to_thread(self._load_app, state["run"])
        except BaseException:
            assert self.leases is not None
            await self.leases.release(run_key(info.id))
            raise
        return await self._go_on(info.id, app, state, "")

    async def _go_on(self, run_id: str, app: LightningApp, state: projection.State, reason: str) -> RunDriver:
        """Drive ``run_id`` on from ``state`` (its latest): a resumed or forked run."""
        from ._fork import restart_events

        assert self.bus is not None
        driver = self._driver(run_id, app)
        driver.state = state
        # A survivor of the last kernel is re-attached, or fenced, before anything starts.
        await driver.supervisor.take_over()
        events: list[Any] = [*restart_events(state), RunResumed(reason=reason)]
        await self.bus.publish_many(run_id, events, "kernel")
        await driver.follow(state["run"]["seq"] + 1)
        return driver

    async def fork_run(self, run_id: str, at: int, app_file: str | None = None) -> RunDriver:
        """A new run that starts as ``run_id``'s events up to its event ``at``, then goes on live (with
        ``app_file``, running that file's flow); ``_fork`` says how. Raises ``ForkError`` for an ``at``
        that is not one of the run's events, or comes after its end."""
        from . import _fork
        from ._app import load_app

        await self.caught_up()
        assert self.bus is not None and self.store is not None and self.leases is not None
        info = await asyncio.to_thread(self.store.run, run_id)
        records, origin = await asyncio.to_thread(_fork.history_at, self.store, info, at)
        app: LightningApp | None = None
        fixed: tuple[str, str, dict[str, Any], Code] | None = None
        if app_file is not None:
            import cloudpickle

            app, module = load_app(app_file)
            code = await self.pack_code(app_file, module)
            ref = await asyncio.to_thread(self.artifacts.put_bytes, cloudpickle.dumps(app))
            fixed = (app_file, ref, app.describe(), code)
        first = _fork.created(records[0], await self._database_checked(), fixed)
        fork_id = new_run_id()
        await self._take_lease(fork_id)
        try:
            skipped = await _fork.copy_events(self.bus, fork_id, records, first)
            await asyncio.to_thread(_fork.write_pointers, self.artifacts, fork_id, records)
            forked = RunForked(
                origin=info.id, at=at, app_file=os.path.abspath(app_file) if app_file else "", skipped=skipped
            )
            await self.bus.publish_many(fork_id, [forked, *_fork.fences(origin, info.id, at)], "kernel")
            await self.caught_up()
            state = await asyncio.to_thread(load_state, self.store, fork_id)
            if app is None:
                app = await asyncio.to_thread(self._load_app, state["run"])
        except BaseException:
            await self.leases.release(run_key(fork_id))
            raise
        return await self._go_on(fork_id, app, state, f"forked from run {info.id} at seq {at}")

    def load_code(self, code: Code, argv: list[str] | None = None) -> None:
        """Unpack ``code`` (an artifact of this kernel's store) and import its app module (run with
        ``argv``), so that a pickled app that names its classes can be loaded."""
        import_app(unpack(self.artifacts.get_bytes(code.ref), code.ref), code.module, code.entry, argv)

    def _load_app(self, run: dict[str, Any]) -> LightningApp:
        app: LightningApp = load_run_app(self.artifacts, run)
        return app

    async def request_stop(self, run_id: str, reason: str = "stopped by request") -> None:
        assert self.bus is not None
        await self.bus.publish(run_id, RunStopRequested(reason=reason), "cli")

    async def host_of(self, run_id: str) -> Holder | None:
        """The kernel that holds ``run_id``'s lease, None when no kernel drives it."""
        assert self.bus is not None
        return await holder_of(self.bus, run_key(run_id))

    async def release(self, run_id: str) -> None:
        """Let go of ``run_id`` (its driver ended or was interrupted): other kernels may resume it."""
        self.runs.pop(run_id, None)
        if self.leases is not None:
            await self.leases.release(run_key(run_id))


def _open_store(url: str) -> EventStore:
    from ._sql import open_store  # type: ignore[import-not-found,unused-ignore]

    store: EventStore = open_store(url)
    return store


__all__ = ["Kernel", "LeaseHeld", "new_run_id"]
