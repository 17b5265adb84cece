"""``run app``, ``resume`` and ``stop`` with a kernel embedded in the command's own process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable

from ._config import Config
from ._kernel import Kernel
from ._loop import RunDriver
from .errors import KernelError

EXIT_CODES = {"succeeded": 0, "failed": 1, "stopped": 0}


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


async def _host(kernel: Kernel, make: Callable[[], Awaitable[RunDriver]]) -> int:
    await kernel.start()
    try:
        driver = await make()
        loop = asyncio.get_running_loop()
        interrupted: list[str] = []
        broken: list[BaseException] = []
        runner = asyncio.ensure_future(driver.run())

        def on_ready(task: asyncio.Future[None]) -> None:
            # The store opens while the flow already runs; if it cannot be opened, stop clearly.
            if not task.cancelled() and task.exception() is not None:
                broken.append(task.exception())  # type: ignore[arg-type]
                runner.cancel()

        asyncio.ensure_future(kernel.ready()).add_done_callback(on_ready)

        def on_signal(name: str) -> None:
            if not interrupted:
                interrupted.append(name)
                runner.cancel()

        for sig, name in ((signal.SIGINT, "sigint"), (signal.SIGTERM, "sigterm")):
            loop.add_signal_handler(sig, on_signal, name)
        try:
            status = await runner
        except asyncio.CancelledError:
            if broken:
                await driver.interrupt("the kernel could not start")
                raise broken[0] from None
            if not interrupted:
                raise
            _say(f"\nstopping run {driver.run_id} ({interrupted[0]}): the Works stop and record why...")
            await driver.interrupt(interrupted[0])
            _say(f"run {driver.run_id} interrupted; carry on with `lightning-kernel resume {driver.run_id}`")
            return 130 if interrupted[0] == "sigint" else 143
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        if status == "failed":
            _say(f"run {driver.run_id} failed:\n{driver.failure or driver.state['run']['message']}".rstrip())
        return EXIT_CODES.get(status, 1)
    finally:
        await kernel.close()


def run_embedded(config: Config, app_file: str, name: str | None = None) -> int:
    from ._app import load_app

    kernel = Kernel(config)

    async def make() -> RunDriver:
        app, _ = load_app(app_file)
        return await kernel.create_run(app, app_file, name)

    return asyncio.run(_host(kernel, make))


def resume_embedded(config: Config, run_id: str) -> int:
    kernel = Kernel(config)

    async def make() -> RunDriver:
        await kernel.ready()
        assert kernel.store is not None
        info = kernel.store.run(run_id)
        _say(f"resuming run {info.id} ({info.name})")
        return await kernel.resume_run(info.id)

    return asyncio.run(_host(kernel, make))


def stop_run(config: Config, run_id: str) -> None:
    """Ask the kernel hosting RUN to stop it; a run no kernel hosts is ended here."""
    from ._bus import Bus
    from ._events import RunEnded, RunStopRequested
    from ._projection import RUN_ENDED

    async def main() -> None:
        path = os.path.join(config.data_dir, "kernel.json")
        live = None
        if config.nats is None and os.path.exists(path):
            with open(path) as f:
                live = json.load(f)
            with contextlib.suppress(OSError):
                os.kill(live["pid"], 0)
                # A kernel is up in this data dir: tell it through its NATS.
                bus = await Bus.connect(live["nats"], live["token"], name="lightning-kernel-cli")
                try:
                    from ._sql import open_store  # type: ignore[import-not-found,unused-ignore]

                    info = open_store(config.db_url).run(run_id)
                    if info.status in RUN_ENDED:
                        raise KernelError(f"run {info.id} already ended ({info.status})")
                    await bus.publish(
                        info.id, RunStopRequested(reason="stopped by `lightning-kernel stop`"), "cli"
                    )
                    _say(f"asked the kernel (pid {live['pid']}) to stop run {info.id}")
                finally:
                    await bus.close()
                return
        kernel = Kernel(config)
        await kernel.start()
        try:
            await kernel.ready()
            assert kernel.store is not None and kernel.bus is not None and kernel.recorder is not None
            info = kernel.store.run(run_id)
            if info.status in RUN_ENDED:
                raise KernelError(f"run {info.id} already ended ({info.status})")
            if info.status == "running" and config.nats is not None:
                await kernel.request_stop(info.id, "stopped by `lightning-kernel stop`")
                _say(f"asked the kernel hosting run {info.id} to stop it")
                return
            seq = await kernel.bus.publish(
                info.id, RunEnded(status="stopped", message="stopped while not running"), "cli"
            )
            await kernel.recorder.wait_recorded(seq)
            _say(f"run {info.id} stopped")
        finally:
            await kernel.close()

    asyncio.run(main())
