"""``lightning-kernel serve``: the long-running kernel and its HTTP API (Starlette on uvicorn).

Endpoints (JSON)::

    GET  /api/runs                          runs, newest first
    POST /api/runs                          submit an app (body: the cloudpickled LightningApp)
    GET  /api/runs/{run}                    one run (``latest`` works)
    GET  /api/runs/{run}/state?at=SEQ       its state, folded from its events
    GET  /api/runs/{run}/events?after=SEQ&limit=N&wait=S
    GET  /api/runs/{run}/logs?after=SEQ&component=C&wait=S
    POST /api/runs/{run}/stop
    GET  /view                              a page listing the runs

``wait`` long-polls: the call returns as soon as there is something after ``after``, or after S
seconds. Endpoints that change anything need ``Authorization: Bearer <token>`` (the token is in
``<data dir>/server.token``, mode 0600) unless the server listens on loopback only.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import ipaddress
import os
import secrets
import signal
from typing import Any

from ._config import Config
from ._kernel import Kernel
from ._projection import RUN_ENDED, component_tree
from ._store import load_state
from ._views import run_json
from .errors import KernelError, RunNotFound


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Server:
    def __init__(self, config: Config, host: str) -> None:
        self.kernel = Kernel(config)
        self.host = host
        self.tasks: dict[str, asyncio.Task[str]] = {}
        self._closing: set[asyncio.Future[None]] = set()
        self.token = secrets.token_urlsafe(24)
        self.require_token = not _is_loopback(host)

    def write_token(self) -> None:
        path = os.path.join(self.kernel.config.data_dir, "server.token")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.token)

    async def start(self) -> None:
        await self.kernel.start()
        await self.kernel.ready()
        self.write_token()
        assert self.kernel.store is not None
        for info in await asyncio.to_thread(self.kernel.store.runs, None, ["running", "interrupted"]):
            if info.status == "running" or info.message == "serve shutdown":
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

        def done(_: Any) -> None:
            self.tasks.pop(driver.run_id, None)
            self.kernel.runs.pop(driver.run_id, None)
            self._closing.add(asyncio.ensure_future(driver.close()))

        task.add_done_callback(done)

    async def stop(self) -> None:
        for run_id, task in list(self.tasks.items()):
            driver = self.kernel.runs.get(run_id)
            task.cancel()
            if driver is not None:
                with contextlib.suppress(Exception):
                    await driver.interrupt("serve shutdown")
        await self.kernel.close()

    # -- the ASGI app -------------------------------------------------------------------------------

    def app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import HTMLResponse, JSONResponse, Response
        from starlette.routing import Route

        kernel = self.kernel

        def store() -> Any:
            assert kernel.store is not None
            return kernel.store

        def authorized(request: Request) -> bool:
            if not self.require_token:
                return True
            return request.headers.get("authorization", "") == f"Bearer {self.token}"

        def error(status: int, message: str) -> Response:
            return JSONResponse({"error": message}, status_code=status)

        async def run_info(run_id: str) -> Any:
            return await asyncio.to_thread(store().run, run_id)

        async def list_runs(request: Request) -> Response:
            limit = int(request.query_params.get("limit", "100"))
            runs = await asyncio.to_thread(store().runs, limit)
            return JSONResponse([run_json(r) for r in runs])

        async def submit(request: Request) -> Response:
            if not authorized(request):
                return error(
                    401, "this server listens beyond loopback: send Authorization: Bearer <server.token>"
                )
            import cloudpickle

            body = await request.body()
            if not body:
                return error(400, "the request body must be a cloudpickled LightningApp")
            # Stored first: nothing is unpickled unless it came from the kernel's own artifact store.
            ref = await asyncio.to_thread(kernel.artifacts.put_bytes, body)
            try:
                app = cloudpickle.loads(await asyncio.to_thread(kernel.artifacts.get_bytes, ref))
            except Exception as exc:
                return error(400, f"the body is not a pickled LightningApp: {type(exc).__name__}: {exc}")
            from ._app import LightningApp

            if not isinstance(app, LightningApp):
                return error(400, f"the body unpickles to a {type(app).__name__}, not a LightningApp")
            app_file = request.headers.get("x-lk-app-file", "app.py")
            driver = await kernel.create_run(app, app_file, request.headers.get("x-lk-name") or None)
            self._host(driver)
            # Answer once the run is in SQL, so the caller's next request finds it.
            assert kernel.recorder is not None and kernel.bus is not None
            await kernel.recorder.wait_recorded(await kernel.bus.last_seq(), timeout=10)
            return JSONResponse({"id": driver.run_id}, status_code=201)

        async def get_run(request: Request) -> Response:
            return JSONResponse(run_json(await run_info(request.path_params["run"])))

        async def get_state(request: Request) -> Response:
            info = await run_info(request.path_params["run"])
            at = request.query_params.get("at")
            state = await asyncio.to_thread(load_state, store(), info.id, int(at) if at else None)
            if not state:
                return error(404, f"run {info.id} has no state at seq {at}")
            return JSONResponse({"run": state["run"], "root": component_tree(state), "works": state["works"]})

        async def poll(request: Request, fetch: Any) -> list[Any]:
            wait = min(float(request.query_params.get("wait", "0")), 30.0)
            deadline = asyncio.get_running_loop().time() + wait
            while True:
                items = await asyncio.to_thread(fetch)
                if items or asyncio.get_running_loop().time() >= deadline:
                    return list(items)
                await asyncio.sleep(0.05)

        async def get_events(request: Request) -> Response:
            info = await run_info(request.path_params["run"])
            after = int(request.query_params.get("after", "0"))
            limit = int(request.query_params.get("limit", "1000"))
            events = await poll(request, lambda: store().events(info.id, after_seq=after, limit=limit))
            return JSONResponse(
                [
                    {
                        "seq": e.seq,
                        "id": e.id,
                        "type": e.type,
                        "version": e.version,
                        "ts": e.ts,
                        "source": e.source,
                        "body": e.body,
                    }
                    for e in events
                ]
            )

        async def get_logs(request: Request) -> Response:
            info = await run_info(request.path_params["run"])
            after = int(request.query_params.get("after", "0"))
            component = request.query_params.get("component")
            lines = await poll(
                request, lambda: store().logs(info.id, component=component, after_seq=after, limit=1000)
            )
            return JSONResponse(
                [
                    {"seq": x.seq, "component": x.component, "ts": x.ts, "stream": x.stream, "line": x.line}
                    for x in lines
                ]
            )

        async def stop_run(request: Request) -> Response:
            if not authorized(request):
                return error(
                    401, "this server listens beyond loopback: send Authorization: Bearer <server.token>"
                )
            info = await run_info(request.path_params["run"])
            if info.status in RUN_ENDED:
                return error(409, f"run {info.id} already ended ({info.status})")
            await kernel.request_stop(info.id, "stopped through the HTTP API")
            return JSONResponse({"id": info.id, "stop_requested": True}, status_code=202)

        async def view(request: Request) -> Response:
            runs = await asyncio.to_thread(store().runs, 100)
            rows = "".join(
                f"<tr><td>{html.escape(r.id)}</td><td>{html.escape(r.name)}</td><td>{html.escape(r.status)}</td>"
                f"<td>{r.last_seq}</td></tr>"
                for r in runs
            )
            return HTMLResponse(
                "<!doctype html><title>lightning-kernel</title><h1>Runs</h1>"
                f"<table><tr><th>run</th><th>name</th><th>status</th><th>last event</th></tr>{rows}</table>"
            )

        async def on_error(request: Request, exc: Exception) -> Response:
            if isinstance(exc, RunNotFound):
                return error(404, str(exc))
            if isinstance(exc, KernelError):
                return error(400, str(exc))
            if isinstance(exc, ValueError):
                return error(400, f"bad parameter: {exc}")
            raise exc

        return Starlette(
            routes=[
                Route("/api/runs", list_runs, methods=["GET"]),
                Route("/api/runs", submit, methods=["POST"]),
                Route("/api/runs/{run}", get_run),
                Route("/api/runs/{run}/state", get_state),
                Route("/api/runs/{run}/events", get_events),
                Route("/api/runs/{run}/logs", get_logs),
                Route("/api/runs/{run}/stop", stop_run, methods=["POST"]),
                Route("/view", view),
            ],
            exception_handlers={KernelError: on_error, ValueError: on_error},
        )


def serve(config: Config, host: str, port: int) -> None:
    import uvicorn

    async def main() -> None:
        server = Server(config, host)
        await server.start()
        uv = uvicorn.Server(
            uvicorn.Config(server.app(), host=host, port=port, log_level="warning", lifespan="off")
        )
        loop = asyncio.get_running_loop()
        # uvicorn catches the signal while serving and raises it again once it returns: this handler
        # takes that second one, so the runs are interrupted cleanly below instead of the process dying.
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, lambda: setattr(uv, "should_exit", True))
        print(f"lightning-kernel serving on http://{host}:{port} (API /api, runs /view)", flush=True)
        try:
            await uv.serve()
        finally:
            await server.stop()

    asyncio.run(main())
