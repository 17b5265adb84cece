"""``lightning-kernel serve``: the long-running kernel and its HTTP API (Starlette on uvicorn).

Endpoints (JSON)::

    GET  /api/runs?limit=N                  runs, newest first
    POST /api/code                          upload an app's folder (a code artifact); {"ref": ...}
    POST /api/runs                          submit an app (body: the cloudpickled LightningApp;
                                            X-LK-Code/-Module/-Entry name its code artifact)
    GET  /api/runs/{run}                    one run (``latest`` works)
    GET  /api/runs/{run}/state?at=SEQ       its state, folded from its events
    GET  /api/runs/{run}/events?after=SEQ&limit=N&wait=S
    GET  /api/runs/{run}/logs?after=SEQ&component=C&limit=N&wait=S
    GET  /api/runs/{run}/events/stream?after=SEQ       server-sent events, to the run's end
    GET  /api/runs/{run}/logs/stream?after=SEQ&component=C
    POST /api/runs/{run}/stop
    POST /api/runs/{run}/resume             carry on a run that did not end, on this server
    POST /api/runs/{run}/replay             {"until": SEQ}: re-run its flow code against its history
    GET  /api/runs/{run}/diff?other=RUN&from=SEQ&to=SEQ
    POST /api/runs/{run}/fork               {"at": SEQ}: a new run from its first events
    GET  /api/openapi.json                  the OpenAPI description of all this (``_openapi``)
    GET  /view                              a page listing the runs

The routes are in ``_api``; this module runs the kernel under them.

``wait`` long-polls (0 to 60 s): the call returns as soon as there is something after ``after``, after
S seconds, when its client goes away, or when the server stops. Every request passes the guard of
``_api_guard`` first: writes need ``Authorization: Bearer <token>`` (the token is in
``<data dir>/server.token``, mode 0600, new at each start, and in the URL ``serve`` prints), reads
need it too beyond loopback; cross-origin requests are refused; bodies are limited to ``--max-body``.
A bad query parameter is a 400 that names it: ``{"error": ..., "parameter": "wait"}``.

Stopping: SIGTERM or SIGINT ends long polls at once, gives other requests (a slow upload) a moment,
then interrupts the hosted runs (``Server.stop``) and exits. A fault under the kernel (NATS lost, the
database failing) interrupts the runs the same way and ends ``serve`` with exit code 3.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import sys
import tempfile
from collections.abc import Callable
from typing import Any

from . import _frontend_serve
from ._api_guard import DEFAULT_MAX_BODY, is_loopback
from ._config import Config
from ._kernel import Kernel
from .errors import KernelError

GRACE_S = 0.5
"""What a request still in flight at SIGTERM (a slow upload) gets before it is cancelled."""
STOP_S = 15.0
"""Seconds after SIGTERM/SIGINT after which serve exits whatever it is doing (a stop that hangs)."""


class Server:
    def __init__(
        self,
        config: Config,
        host: str,
        port: int = 7501,
        max_body: int = DEFAULT_MAX_BODY,
        kernel: Kernel | None = None,
    ) -> None:
        from ._flow_http import Gateway

        self.kernel = kernel if kernel is not None else Kernel(config)
        """Its own, or (``run app``) the kernel of the command's run."""
        self.default_run: str | None = None
        """``run app``'s run: its flow's API at the routes themselves, its page at ``/view``."""
        self.gateway = Gateway(self)
        self.host = host
        self.port = port
        self.max_body = max_body
        self.tasks: dict[str, asyncio.Task[str]] = {}
        self._closing: set[asyncio.Future[None]] = set()
        self.token = secrets.token_urlsafe(24)
        self.require_token = not is_loopback(host)
        """Reads need the token too: the server listens beyond loopback."""
        self.stopping = asyncio.Event()
        """Set at SIGTERM: long polls return at once."""

    @property
    def token_path(self) -> str:
        return os.path.join(self.kernel.config.data_dir, "server.token")

    def write_token(self) -> None:
        # A new file (mkstemp: mode 0600) renamed over the old one: a token file of an older serve,
        # whatever its mode, or a link someone planted there, never holds the new token.
        os.makedirs(self.kernel.config.data_dir, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".server.token-", dir=self.kernel.config.data_dir)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(self.token)
            os.replace(tmp, self.token_path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    @property
    def address_path(self) -> str:
        return os.path.join(self.kernel.config.data_dir, "server.json")

    def write_address(self) -> None:
        """``<data dir>/server.json``: where this server listens, for ``run command`` to find it."""
        import json

        fd, tmp = tempfile.mkstemp(prefix=".server.json-", dir=self.kernel.config.data_dir)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump({"url": self.url(), "pid": os.getpid()}, f)
            os.replace(tmp, self.address_path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def remove_address(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.address_path)

    def url(self, path: str = "") -> str:
        """This server's URL, as a browser on this machine reaches it."""
        host = self.host.strip("[]")
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port}{path}"

    def announce(self) -> None:
        """Say where the server listens, and the URL that carries the token (as Jupyter does)."""
        beyond = "" if not self.require_token else " (beyond loopback: every request needs the token)"
        host = self.host.strip("[]")
        bound = f"[{host}]" if ":" in host else host
        print(f"lightning-kernel serving on http://{bound}:{self.port}{beyond}", flush=True)
        print(f"    open {self.url('/view')}?token={self.token}", flush=True)
        print(
            f"    the token is in {self.token_path}; clients read it from there or LK_SERVER_TOKEN",
            flush=True,
        )
        self.write_address()

    async def start(self) -> None:
        await self.kernel.start()
        await self.kernel.ready()
        self.write_token()
        assert self.kernel.store is not None
        await self.kernel.caught_up()
        for info in await asyncio.to_thread(self.kernel.store.runs, None, ["running", "interrupted"]):
            if info.status == "running" or info.message == "serve shutdown":
                holder = await self.kernel.host_of(info.id)
                if holder is not None and not holder.is_dead_here():
                    print(f"run {info.id} is driven by {holder.describe()}; not resumed here", flush=True)
                    continue
                try:
                    driver = await self.kernel.resume_run(info.id)
                except KernelError as exc:
                    print(f"run {info.id} could not be resumed: {exc}", flush=True)
                    continue
                self._host(driver)
                print(f"resumed run {info.id} ({info.name})", flush=True)

    def _host(self, driver: Any) -> None:
        task = asyncio.ensure_future(driver.run())
        self.tasks[driver.run_id] = task
        _frontend_serve.start(self, driver)  # its StreamlitFrontend/PanelFrontend servers

        def done(_: Any) -> None:
            self.tasks.pop(driver.run_id, None)
            self._closing.add(asyncio.ensure_future(self._let_go(driver)))

        task.add_done_callback(done)

    async def _let_go(self, driver: Any) -> None:
        """A run's driver ended (the run ended, or a fault aborted it): stop its Works and frontends'
        servers, free its lease."""
        with contextlib.suppress(Exception):
            await _frontend_serve.stop(self, driver.run_id)
        if driver.aborted.done():
            fault = driver.aborted.result()
            print(f"run {driver.run_id} interrupted: {fault}", flush=True)
            up = self.kernel.bus is not None and self.kernel.bus.lost_at is None and not self.kernel.nats_gone
            with contextlib.suppress(Exception):
                await driver.interrupt(str(fault), publish=up)
        with contextlib.suppress(Exception):
            await driver.close()
        with contextlib.suppress(Exception):
            await self.kernel.release(driver.run_id)

    async def stop(self) -> None:
        self.remove_address()
        await self.gateway.close()
        with contextlib.suppress(Exception):
            await _frontend_serve.stop(self)
        for run_id, task in list(self.tasks.items()):
            driver = self.kernel.runs.get(run_id)
            task.cancel()
            if driver is not None:
                up = not self.kernel.nats_gone
                with contextlib.suppress(Exception):
                    await driver.interrupt("serve shutdown", publish=up)
                with contextlib.suppress(Exception):
                    await self.kernel.release(run_id)
        await self.kernel.close()

    # -- long polls ----------------------------------------------------------------------------------

    async def poll(self, request: Any, fetch: Callable[[], list[Any]], wait: float, tick: float) -> list[Any]:
        """``fetch()`` until it finds something, ``wait`` s pass, the client leaves or the server stops.

        Between two fetches it sleeps until the recorder commits an event (its progress condition),
        or ``tick`` s at most, to see whether the client is still there."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        recorder = self.kernel.recorder
        while True:
            seen = recorder.recorded_seq if recorder is not None else 0
            items = await asyncio.to_thread(fetch)
            left = deadline - loop.time()
            if items or left <= 0 or self.stopping.is_set() or await request.is_disconnected():
                return items
            await self._news(seen, min(left, tick))

    async def _news(self, seen: int, timeout: float) -> None:
        """Return when an event after ``seen`` is recorded, the server stops, or after ``timeout`` s."""
        recorder = self.kernel.recorder
        waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(self.stopping.wait())]
        if recorder is not None and recorder.error is None:  # a failing recorder would wake it at once
            waits.append(asyncio.ensure_future(recorder.wait_recorded(seen + 1, timeout)))
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    # -- the ASGI app -------------------------------------------------------------------------------

    def app(self) -> Any:
        from ._api import make_app

        return make_app(self)


RUN_APP_PORT = int(os.environ.get("LK_PORT", "7501"))
"""Where ``run app`` serves its run (Lightning App's port); a free port when it is taken."""


class RunServer:
    """``run app``'s HTTP server, in the command's own loop: the kernel's API, the run's page at
    ``/view`` and its flow's API at the routes themselves, on 127.0.0.1:7501 (or a free port).

    It starts once the database is open (its routes read it), which is after the flow's first steps:
    uvicorn and Starlette are imported on a thread meanwhile, so nothing of it comes before the first
    ``root.run()``. Signals stay the command's: uvicorn's handlers are never installed."""

    def __init__(self, kernel: Kernel, run_id: str, open_ui: bool = False, host: str = "127.0.0.1") -> None:
        self.kernel = kernel
        self.run_id = run_id
        self.open_ui = open_ui
        self.host = host
        self.server: Server | None = None
        self._uv: Any = None
        self._exiting = asyncio.Event()
        self.task = asyncio.ensure_future(self._serve())

    async def _serve(self) -> None:
        # Shielded: a stop while it waits must not cancel the kernel's own opening of the store.
        await asyncio.shield(self.kernel.store_ready())
        uvicorn = await asyncio.to_thread(_import_http)
        sock = _bind(self.host, RUN_APP_PORT)
        server = self.server = Server(
            self.kernel.config, self.host, int(sock.getsockname()[1]), kernel=self.kernel
        )
        server.default_run = self.run_id
        server.write_token()
        # Its StreamlitFrontend/PanelFrontend servers, now that their state API has a port.
        _frontend_serve.start(server, self.kernel.runs[self.run_id])
        announce = self._announce
        exiting = self._exiting

        class Quiet(uvicorn.Server):  # type: ignore[name-defined]  # the module, imported on a thread
            def capture_signals(self) -> Any:
                return contextlib.nullcontext()

            async def startup(self, sockets: Any = None) -> None:
                await super().startup(sockets)
                if self.started:
                    announce()

            async def shutdown(self, sockets: Any = None) -> None:
                # uvicorn's own sleeps 0.1 s whatever is open: a run that ended waits only for
                # requests still in flight (GRACE_S at most).
                wait = getattr(self, "_wait_tasks_to_complete", None)
                if wait is None:
                    await super().shutdown(sockets)
                    return
                for listening in self.servers:
                    listening.close()
                for sock in sockets or []:
                    sock.close()
                for connection in list(self.server_state.connections):
                    connection.shutdown()
                if self.server_state.connections or self.server_state.tasks:
                    try:
                        await asyncio.wait_for(wait(), GRACE_S)
                    except asyncio.TimeoutError:
                        for task in self.server_state.tasks:
                            task.cancel()

            async def main_loop(self) -> None:
                # uvicorn looks at should_exit every 0.1 s: a stop goes on at once instead.
                ticking = asyncio.ensure_future(super().main_loop())
                stopped = asyncio.ensure_future(exiting.wait())
                try:
                    await asyncio.wait({ticking, stopped}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    ticking.cancel()
                    stopped.cancel()

        self._uv = Quiet(
            uvicorn.Config(
                server.app(),
                log_level="warning",
                lifespan="off",
                access_log=False,
                timeout_graceful_shutdown=GRACE_S,
            )
        )
        await self._uv.serve(sockets=[sock])

    def _announce(self) -> None:
        assert self.server is not None
        self.server.write_address()
        url = f"{self.server.url('/view')}?token={self.server.token}"
        print(f"View it in your browser: {url}", file=sys.stderr, flush=True)
        if self.open_ui and _has_display():
            import webbrowser

            with contextlib.suppress(Exception):
                webbrowser.open(url)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.stopping.set()
            self.server.remove_address()
            with contextlib.suppress(Exception):
                await _frontend_serve.stop(self.server)
        if self._uv is not None and not self.task.done():
            self._uv.should_exit = True
            self._exiting.set()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(self.task), GRACE_S + 2)
        if not self.task.done():
            self.task.cancel()
        with contextlib.suppress(BaseException):
            await self.task
        if self.server is not None:
            await self.server.gateway.close()


def serve_run(kernel: Kernel, run_id: str, open_ui: bool = False) -> RunServer:
    return RunServer(kernel, run_id, open_ui)


def _import_http() -> Any:
    import uvicorn

    from . import _api  # noqa: F401  # Starlette with it

    return uvicorn


def _bind(host: str, port: int) -> Any:
    import socket

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.bind((host, 0))  # taken (another run app, a serve): any free port
    sock.listen(128)
    sock.setblocking(False)
    return sock


def _has_display() -> bool:
    return sys.platform in ("darwin", "win32") or bool(
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    )


def serve(config: Config, host: str, port: int, max_body: int = DEFAULT_MAX_BODY) -> int:
    """Serve until SIGTERM/SIGINT (exit code 0) or a fault under the kernel (3)."""
    import uvicorn

    class Uvicorn(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if self.started:
                bound = self.servers[0].sockets[0].getsockname()
                server.port = int(bound[1])
                server.announce()

        async def shutdown(self, sockets: Any = None) -> None:
            server.stopping.set()  # long polls answer now, so the grace below is for the rest
            await super().shutdown(sockets)

        def handle_exit(self, sig: int, frame: Any) -> None:
            # uvicorn's plain handler while it serves. Flows run on the loop: a root.run() that
            # blocks (sleeps, waits on a socket) would keep the loop from ever seeing should_exit,
            # so it is interrupted here, as `run app` does (the iteration is dropped).
            again = self.should_exit
            super().handle_exit(sig, frame)
            code = 130 if sig == signal.SIGINT else 143
            if again:
                os._exit(code)  # a second signal: now
            from ._embedded import _exit_soon

            _exit_soon(code, STOP_S)  # a stop that hangs ends anyway
            drivers = list(server.kernel.runs.values())
            for driver in drivers:
                driver.hold()
            if any(d.in_flow for d in drivers):
                from ._loop import FlowInterrupted

                raise FlowInterrupted(signal.Signals(sig).name.lower())

    server = Server(config, host, port, max_body)

    async def main() -> None:
        uv = Uvicorn(
            uvicorn.Config(
                server.app(),
                host=host,
                port=port,
                log_level="warning",
                lifespan="off",
                timeout_graceful_shutdown=GRACE_S,  # type: ignore[arg-type]  # uvicorn types it int; floats work
            )
        )
        loop = asyncio.get_running_loop()
        main_task = asyncio.current_task()

        def on_signal() -> None:
            # While serving, uvicorn takes the signal itself (and raises it again once it returns:
            # this handler takes that one). Before, the kernel's start is cut short.
            uv.should_exit = True
            if not uv.started and main_task is not None:
                main_task.cancel()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)

        async def on_fault() -> None:
            assert server.kernel.fault is not None
            fault = await asyncio.shield(server.kernel.fault)
            print(f"lightning-kernel serve: {fault}; stopping (resume once it is fixed)", flush=True)
            faulted.append(fault)
            uv.should_exit = True

        try:
            await server.start()
            watch = asyncio.ensure_future(on_fault())
            await uv.serve()
            watch.cancel()
        except asyncio.CancelledError:
            if not uv.should_exit:
                raise
        finally:
            await server.stop()

    faulted: list[BaseException] = []
    asyncio.run(main())
    return 3 if faulted else 0
