"""``run app``, ``resume`` and ``stop`` with a kernel embedded in the command's own process.

Exit codes: 0 the run succeeded or was stopped, 1 it failed (or the command could not run), 3 a
fault interrupted it (NATS lost, the database failing, its lease taken: ``resume`` carries on), 130
and 143 Ctrl-C and SIGTERM interrupted it. SIGTERM always ends the process: a second one, or a clean
stop that takes more than ``SHUTDOWN_S``, ends it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from ._config import Config
from ._datadir import EarlyStart
from ._kernel import Kernel
from ._loop import FlowInterrupted, RunDriver
from .errors import KernelError, KernelFault

EXIT_CODES = {"succeeded": 0, "failed": 1, "stopped": 0}
EXIT_FAULT = 3
SHUTDOWN_S = float(os.environ.get("LK_SHUTDOWN_S", "20"))
"""Seconds a signalled kernel has to stop its Works and record why before it exits regardless."""


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _exit_soon(code: int, seconds: float) -> None:
    """End the process after ``seconds`` whatever it is doing then (a clean stop that hangs)."""

    def run() -> None:
        threading.Event().wait(seconds)
        _say(f"lightning-kernel: still stopping after {seconds:.0f} s; exiting now")
        os._exit(code)

    threading.Thread(target=run, name="lk-shutdown-watchdog", daemon=True).start()


async def _host(
    kernel: Kernel,
    make: Callable[[], Awaitable[RunDriver]],
    defer_store: bool = False,
    before_close: Callable[[], Awaitable[None]] | None = None,
) -> int:
    loop = asyncio.get_running_loop()
    interrupted: list[str] = []
    stopping = asyncio.Event()

    names = {signal.SIGINT: "sigint", signal.SIGTERM: "sigterm"}

    def on_signal(signum: int, frame: object) -> None:
        # A plain handler, not the loop's: the flow runs on the loop, and a root.run() that blocks
        # (sleeps, waits on a socket) must still be stopped. The handler runs between the flow's
        # bytecodes; the stop itself happens on the loop once the flow has let go.
        name = names[signal.Signals(signum)]
        if interrupted:
            os._exit(130 if name == "sigint" else 143)  # a second signal: now
        interrupted.append(name)
        _exit_soon(130 if name == "sigint" else 143, SHUTDOWN_S)
        loop.call_soon_threadsafe(stopping.set)
        if any(driver.in_flow for driver in kernel.runs.values()):
            raise FlowInterrupted(name)

    previous = {sig: signal.signal(sig, on_signal) for sig in names}
    try:
        return await _host_run(kernel, make, interrupted, stopping, defer_store)
    finally:
        if before_close is not None:
            with contextlib.suppress(Exception):
                await before_close()
        with contextlib.suppress(Exception):
            await kernel.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


async def _host_run(
    kernel: Kernel,
    make: Callable[[], Awaitable[RunDriver]],
    interrupted: list[str],
    stopping: asyncio.Event,
    defer_store: bool,
) -> int:
    starting = asyncio.ensure_future(_start_and_make(kernel, make, defer_store))
    signalled = asyncio.ensure_future(stopping.wait())
    await asyncio.wait({starting, signalled}, return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():
        starting.cancel()
        with contextlib.suppress(BaseException):
            await starting
        return 130 if interrupted[0] == "sigint" else 143
    signalled.cancel()
    driver = starting.result()
    runner = asyncio.ensure_future(driver.run())
    watched: set[asyncio.Future[object]] = {runner, driver.aborted, asyncio.ensure_future(stopping.wait())}  # type: ignore[arg-type]
    if kernel._ready is not None:
        watched.add(kernel._ready)  # type: ignore[arg-type]
    while True:
        done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        if kernel._ready in done:
            watched.discard(kernel._ready)
            exc = kernel._ready.exception() if kernel._ready is not None else None
            if exc is None:
                continue
            runner.cancel()
            await driver.interrupt("the kernel could not start")
            raise exc
        break
    if runner in done:
        try:
            status = runner.result()
        except KernelFault as fault:
            return await _faulted(kernel, driver, fault)
        await kernel.release(driver.run_id)
        if status == "failed":
            _say(f"run {driver.run_id} failed:\n{driver.failure or driver.state['run']['message']}".rstrip())
        # Done only once the database knows it: never an exit 0 with the run's end unrecorded.
        recording = asyncio.ensure_future(kernel.recorded_all())
        await asyncio.wait(
            {recording, asyncio.ensure_future(stopping.wait())}, return_when=asyncio.FIRST_COMPLETED
        )
        missing = recording.result() if recording.done() else "the kernel was stopped before"
        if missing is not None:
            recording.cancel()
            _say(
                f"run {driver.run_id} ended ({status}), but its last events are not recorded: {missing}. "
                f"They wait in NATS: `lightning-kernel resume {driver.run_id}` records them once the "
                "database is back"
            )
            return EXIT_FAULT
        return EXIT_CODES.get(status, 1)
    runner.cancel()
    with contextlib.suppress(BaseException):
        await runner
    if driver.aborted.done():
        return await _faulted(kernel, driver, driver.aborted.result())
    _say(f"\nstopping run {driver.run_id} ({interrupted[0]}): the Works stop and record why...")
    await driver.interrupt(interrupted[0])
    await kernel.release(driver.run_id)
    _say(f"run {driver.run_id} interrupted; carry on with `lightning-kernel resume {driver.run_id}`")
    return 130 if interrupted[0] == "sigint" else 143


async def _start_and_make(
    kernel: Kernel, make: Callable[[], Awaitable[RunDriver]], defer_store: bool
) -> RunDriver:
    """Start the kernel and make the run; ``make`` may work (import the app) while NATS starts, and
    awaits ``kernel.started()`` before it needs the kernel."""
    kernel.start_task = asyncio.ensure_future(kernel.start(defer_store=defer_store))
    await asyncio.sleep(0)  # the kernel is now waiting for its nats-server, in a thread
    try:
        return await make()
    except BaseException:
        if not kernel.start_task.done():
            kernel.start_task.cancel()
        with contextlib.suppress(BaseException):
            await kernel.start_task
        raise


async def _faulted(kernel: Kernel, driver: RunDriver, fault: KernelError) -> int:
    """A service failed under the run: stop its Works, say why where it can still be said, and exit."""
    _say(f"\nrun {driver.run_id} interrupted: {fault}")
    nats_up = kernel.bus is not None and kernel.bus.lost_at is None and not kernel.nats_gone
    await driver.interrupt(str(fault), publish=nats_up)
    if not nats_up and kernel.store is not None:
        # The log cannot take the interruption now; the runs row says it until the log can.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                asyncio.to_thread(kernel.store.set_run_status, driver.run_id, "interrupted", str(fault)), 5
            )
    _say(f"carry on with `lightning-kernel resume {driver.run_id}` once it is fixed")
    return EXIT_FAULT


def run_embedded(
    config: Config,
    app_file: str,
    name: str | None = None,
    early: EarlyStart | None = None,
    argv: list[str] | None = None,
    env: dict[str, str] | None = None,
    ui: bool = True,
    open_ui: bool = False,
) -> int:
    """Run ``app_file`` here; ``ui``: serve the run's page and its flow's API (``_server.serve_run``)."""
    from ._app import load_app

    kernel = Kernel(config, early)
    serving: list[Any] = []
    # The flow sees them as the Works do (Lightning App sets them while it loads and runs the app).
    os.environ.update(env or {})

    async def make() -> RunDriver:
        # While the embedded nats-server starts (a thread waits for it): import the app, pack its folder.
        app, module = load_app(app_file, argv)
        code = await kernel.pack_code(app_file, module)
        await kernel.started()
        driver = await kernel.create_run(app, app_file, name, code=code, argv=argv, env=env)
        if ui:
            from ._server import serve_run

            serving.append(serve_run(kernel, driver.run_id, open_ui))
        return driver

    async def stop_serving() -> None:
        for served in serving:
            await served.stop()

    return asyncio.run(_host(kernel, make, defer_store=True, before_close=stop_serving))


def resume_embedded(config: Config, run_id: str, early: EarlyStart | None = None, ui: bool = True) -> int:
    """Carry on ``run_id`` here; ``ui``: serve its page and its flow's API, as ``run app`` does."""
    kernel = Kernel(config, early)
    serving: list[Any] = []

    async def make() -> RunDriver:
        await kernel.started()
        # Every event is recorded first: `latest` and the run's status are those of the log's end.
        await kernel.caught_up()
        assert kernel.store is not None
        info = kernel.store.run(run_id)
        driver = await kernel.resume_run(info.id)  # refuses a run that ended, or is held elsewhere
        _say(f"resuming run {info.id} ({info.name})")
        if ui:
            from ._server import serve_run

            serving.append(serve_run(kernel, driver.run_id))
        return driver

    async def stop_serving() -> None:
        for served in serving:
            await served.stop()

    return asyncio.run(_host(kernel, make, before_close=stop_serving))


def stop_run(config: Config, run_id: str, wait: float = 30.0) -> None:
    """Ask the kernel that drives RUN to stop it, wherever it is; a run no kernel drives ends here.

    Never starts a second kernel for a run that one drives: the request goes through NATS, and the
    command waits (up to ``wait`` s) for the run's end. Only for a run nobody drives does it take the
    run's lease, record the end itself, and let go.
    """
    from ._bus import Bus
    from ._events import RunEnded, RunStopRequested
    from ._lease import Holder, Leases, holder_of, new_kernel_id, run_key
    from ._projection import RUN_ENDED
    from ._recorder import Recorder
    from ._sql import open_store  # type: ignore[import-not-found,unused-ignore]

    async def main() -> None:
        store = open_store(config.db_url, create=False)
        try:
            info = store.run(run_id)
            if info.status in RUN_ENDED:
                raise KernelError(f"run {info.id} already ended ({info.status})")
            live = _live_kernel(config)
            nats = config.nats or (live["nats"] if live else None)
            if nats is None:
                # No kernel up in this data dir and no --nats: nobody drives the run; end it here.
                kernel = Kernel(config)
                await kernel.start()
                try:
                    await kernel.caught_up()
                    assert kernel.bus is not None and kernel.recorder is not None
                    await kernel._take_lease(info.id)
                    seq = await kernel.bus.publish(
                        info.id, RunEnded(status="stopped", message="stopped while not running"), "cli"
                    )
                    await kernel.recorder.wait_recorded(seq)
                    await kernel.release(info.id)
                    _say(f"run {info.id} stopped")
                finally:
                    await kernel.close()
                return
            token = config.nats_token if config.nats else live["token"] if live else None
            bus = await Bus.connect(nats, token, name="lightning-kernel-cli")
            try:
                holder = await holder_of(bus, run_key(info.id))
                if holder is not None:
                    ended = asyncio.Event()

                    def on_event(payload: dict[str, object]) -> None:
                        if payload.get("type") == RunEnded.TYPE:
                            ended.set()

                    sub = await bus.listen(f"lk.{info.id}.run", on_event)
                    await bus.publish(
                        info.id, RunStopRequested(reason="stopped by `lightning-kernel stop`"), "cli"
                    )
                    _say(f"asked {holder.describe()} to stop run {info.id}")
                    try:
                        await asyncio.wait_for(ended.wait(), wait)
                        _say(f"run {info.id} stopped")
                    except asyncio.TimeoutError:
                        _say(f"run {info.id} is still stopping after {wait:.0f} s")
                    finally:
                        with contextlib.suppress(Exception):
                            await sub.unsubscribe()
                    return
                # Nobody drives it: take its lease (so nobody resumes it meanwhile), end it, record it.
                leases = Leases(bus, Holder.this_process(new_kernel_id(), config.data_dir), lambda *_: None)
                await leases.start()
                await leases.acquire(run_key(info.id), f"run {info.id}")
                recorder = Recorder(bus, store, leases=leases, where=f"database {config.db_url}")
                await recorder.start()
                try:
                    seq = await bus.publish(
                        info.id, RunEnded(status="stopped", message="stopped while not running"), "cli"
                    )
                    await recorder.wait_recorded(seq)
                finally:
                    await recorder.stop()
                    await leases.close()
                _say(f"run {info.id} stopped")
            finally:
                await bus.close()
        finally:
            store.close()

    asyncio.run(main())


def _live_kernel(config: Config) -> dict[str, str] | None:
    """The ``kernel.json`` of a kernel up in this data dir (its embedded NATS), None if there is none."""
    path = os.path.join(config.data_dir, "kernel.json")
    if config.nats is not None or not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            live: dict[str, str] = json.load(f)
        os.kill(int(live["pid"]), 0)
    except (OSError, ValueError, KeyError):
        return None
    return live
