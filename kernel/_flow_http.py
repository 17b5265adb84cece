"""The server side of the flows' HTTP API, commands and pages (routes of ``_api``).

For each run this server hosts::

    ANY  /runs/{run}/{route}              the flow's API route (``configure_api()``), e.g.
                                          /runs/<run>/api/v1/name; a command is POST /runs/<run>/command/<name>
    GET  /runs/{run}/commands             its commands and their arguments (``run command --help``)
    GET  /runs/{run}/view                 its page (the web UI of ``_ui``), beside the tabs of ``configure_layout()``
    GET  /runs/{run}/ui/{flow}/{path}     a flow's StaticWebFrontend files
    ANY  /{route}                         under ``run app``: the run's API at the route itself (as
                                          Lightning App serves it at http://127.0.0.1:7501/api/v1/name)

``{run}`` may be ``latest``: the newest run this server hosts. A route the kernel's own API has
(``/api/runs...``, ``/view``) is the kernel's: a flow cannot take it over.

A request is published as ``flow.request_received`` and answered by the run's loop (``_requests``);
this side waits for the ``flow.request_answered`` of its id (a plain subscription to every run's
``lk.*.api``, opened once), up to the route's ``timeout`` (30 s by default), else 504. The guard of
``_api_guard`` checks every request first; a flow's own routes are open to writes without the token
while the server listens on loopback only (a Lightning App's clients send none), and need it beyond.
"""

from __future__ import annotations

import asyncio
import json
import mimetypes
import secrets
from typing import TYPE_CHECKING, Any

from ._codec import ENVELOPE_BYTES
from ._events import FlowRequestAnswered, FlowRequestReceived
from ._layout import confined, frontend_of, render, static_root, tabs_of
from ._requests import routes_of
from .errors import KernelError

if TYPE_CHECKING:
    from ._loop import RunDriver
    from ._server import Server

METHODS = ["GET", "POST", "PUT", "DELETE"]


class NotHosted(KernelError):
    """A run that this server does not drive (it ended, or another kernel drives it)."""


class Gateway:
    """Requests to the flows of the runs a server hosts: published as events, their answers awaited."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.pending: dict[str, asyncio.Future[tuple[int, Any]]] = {}
        self._sub: Any = None
        self._subscribing: asyncio.Lock | None = None

    def driving(self, run: str) -> RunDriver | None:
        """The driver of ``run`` if this server hosts it (``latest``: the newest run hosted here)."""
        runs = self.server.kernel.runs
        if run == "latest":
            default = self.server.default_run
            if default is not None and default in runs:
                return runs[default]
            return runs[max(runs)] if runs else None
        return runs.get(run)

    def hosted(self, run: str) -> RunDriver:
        """``driving(run)``, or ``NotHosted`` (``RunNotFound`` for a run nobody knows)."""
        driver = self.driving(run)
        if driver is not None:
            return driver
        if run == "latest":
            raise NotHosted("this server drives no run now: start one with `lightning-kernel run app`")
        status = ""
        store = self.server.kernel.store
        if store is not None:
            status = store.run(run).status  # RunNotFound for a run nobody knows
        raise NotHosted(f"run {run} is not driven by this server" + (f" (it is {status})" if status else ""))

    async def _listening(self) -> None:
        if self._sub is not None:
            return
        if self._subscribing is None:
            self._subscribing = asyncio.Lock()
        async with self._subscribing:
            if self._sub is None:
                bus = self.server.kernel.bus
                assert bus is not None
                self._sub = await bus.listen("lk.*.api", self._on_answer)

    def _on_answer(self, payload: dict[str, Any]) -> None:
        if payload.get("type") != FlowRequestAnswered.TYPE:
            return
        body = payload.get("body") or {}
        waiting = self.pending.get(str(body.get("id", "")))
        if waiting is not None and not waiting.done():
            waiting.set_result((int(body.get("status", 500)), body.get("response")))

    async def call(
        self, driver: RunDriver, method: str, route: str, body: Any, query: dict[str, str], timeout: float
    ) -> tuple[int, Any]:
        """Send a request to ``driver``'s flow and wait for its answer: ``(status, response)``."""
        await self._listening()
        bus = self.server.kernel.bus
        assert bus is not None
        rid = secrets.token_hex(8)
        waiting: asyncio.Future[tuple[int, Any]] = asyncio.get_running_loop().create_future()
        self.pending[rid] = waiting
        try:
            event = FlowRequestReceived(id=rid, route=route, method=method, data=body, query=query)
            await bus.publish(driver.run_id, event, "api")
            try:
                status, response = await asyncio.wait_for(asyncio.shield(waiting), timeout)
            except asyncio.TimeoutError:
                return 504, (
                    f"the flow of run {driver.run_id} did not answer {method} {route} within {timeout:g} s "
                    "(a root.run() or a handler that blocks holds up its requests); the request stays "
                    "in its log and may still be answered"
                )
        finally:
            self.pending.pop(rid, None)
        recorder = self.server.kernel.recorder
        if recorder is not None and recorder.error is None:
            # Once answered, `lightning-kernel state` shows what the handler changed.
            await recorder.wait_recorded(await bus.last_seq(), timeout=2)
        return status, response

    async def close(self) -> None:
        if self._sub is not None:
            sub, self._sub = self._sub, None
            try:
                await sub.unsubscribe()
            except Exception:  # the connection is already closing with the kernel
                pass

    # -- what the guard asks --------------------------------------------------------------------------

    def flow_route(self, path: str, method: str) -> bool:
        """Whether ``method path`` is a route or command of a flow hosted here."""
        run, route = self.split(path)
        driver = self.driving(run) if run is not None else None
        if driver is None:
            return False
        try:
            return routes_of(driver.app).find(method, route) is not None
        except KernelError:
            return False

    def split(self, path: str) -> tuple[str | None, str]:
        """``(run, route)`` of a flow path: ``/runs/<run>/<route>``, or the route of the default run."""
        if path.startswith("/runs/"):
            run, _, rest = path[len("/runs/") :].partition("/")
            return (run or None), "/" + rest
        return self.server.default_run, path


def routes(server: Server) -> tuple[list[Any], Any]:
    """The Starlette routes of this module, and the ASGI app for every path no route takes (the
    router's ``default``): the flows' routes and frontend files."""
    from starlette.requests import Request
    from starlette.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
    from starlette.routing import Route

    gateway = server.gateway

    def failed(status: int, message: str) -> Response:
        # "detail" as well: what Lightning App's (FastAPI's) clients read.
        return JSONResponse({"error": message, "detail": message}, status_code=status)

    def driver_of(run: str) -> RunDriver:
        return gateway.hosted(run)  # NotHosted: a 409 (``_api``'s error handler)

    async def call(request: Request, driver: RunDriver, route: str) -> Response:
        method = request.method
        try:
            table = routes_of(driver.app)
        except KernelError as exc:
            return failed(500, str(exc))
        found = table.find(method, route)
        if found is None:
            if table.knows(route):
                return failed(405, f"{route} of run {driver.run_id} does not answer {method}")
            return failed(404, f"run {driver.run_id}'s flow has no route {method} {route}")
        raw = await request.body()
        limit = int(driver.bus.nc.max_payload) - ENVELOPE_BYTES
        if len(raw) > limit:
            return failed(
                413, f"the body ({len(raw)} bytes) is larger than a request event carries ({limit})"
            )
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError:
            return failed(400, f"the body of {method} {route} must be JSON")
        query = {k: v for k, v in request.query_params.items() if k != "token"}
        status, response = await gateway.call(driver, method, route, body, query, found.timeout)
        if status == 200:
            return JSONResponse(response)
        return failed(status, response if isinstance(response, str) else json.dumps(response))

    async def flow_path(request: Request) -> Response:
        """Every path no route of the kernel takes: a flow's frontend file, or a flow's route."""
        path = request.url.path
        if path.startswith("/runs/"):
            run, _, rest = path[len("/runs/") :].partition("/")
            if rest.startswith("ui/") and request.method in ("GET", "HEAD"):
                flow, _, file = rest[len("ui/") :].partition("/")
                return ui(request, driver_of(run), flow, file, trailing="/" in rest[len("ui/") :])
            return await call(request, driver_of(run), "/" + rest)
        if server.default_run is None:
            return failed(404, f"no route {path}; a run's flow API is at /runs/<run>{path}")
        return await call(request, driver_of(server.default_run), path)

    async def commands(request: Request) -> Response:
        from ._commands import source_of
        from ._http_methods import describe

        driver = driver_of(request.path_params["run"])
        try:
            table = routes_of(driver.app)
            listed = []
            for name, target in table.commands.items():
                handler = table.by_key[("POST", f"/command/{name}")].handler
                listed.append(
                    {
                        "name": name,
                        "description": (getattr(target, "description", "") or handler.__doc__ or "").strip(),
                        "params": describe(handler),
                        "client": source_of(target),
                    }
                )
        except KernelError as exc:
            return failed(500, str(exc))
        return JSONResponse({"run": driver.run_id, "commands": listed})

    async def view(request: Request) -> Response:
        from ._ui import run_page

        run = request.path_params["run"]
        driver = gateway.driving(run)
        if driver is not None:
            return HTMLResponse(run_page(driver, driver.run_id))
        # A run this server does not drive: its history, without its layout (RunNotFound: a 404).
        store = server.kernel.store
        assert store is not None
        info = await asyncio.to_thread(store.run, run)
        return HTMLResponse(run_page(None, info.id))

    def ui(request: Request, driver: RunDriver, flow_name: str, rest: str, trailing: bool) -> Response:
        from ._frontend_serve import page_of
        from .frontend import StaticWebFrontend

        flow = driver.app.components.get(flow_name)
        own_server = page_of(flow)  # a StreamlitFrontend's or PanelFrontend's: the way to its server
        if own_server is not None:
            return own_server
        frontend = frontend_of(flow) if flow is not None else None
        if flow is None or not isinstance(frontend, StaticWebFrontend):
            return failed(404, f"run {driver.run_id} has no static frontend for {flow_name!r}")
        if not trailing:
            return RedirectResponse(request.url.path + "/", status_code=307)
        path = confined(static_root(flow, frontend), rest)  # type: ignore[arg-type]
        if path is None:
            return failed(404, f"{rest or 'index.html'} is not a file of {flow_name}'s frontend")
        media = mimetypes.guess_type(path)[0] or "application/octet-stream"
        # Framed by the run's page, on this origin: SAMEORIGIN instead of the guard's DENY.
        return FileResponse(path, media_type=media, headers={"x-frame-options": "SAMEORIGIN"})

    async def fallback(scope: Any, receive: Any, send: Any) -> None:
        response = await flow_path(Request(scope, receive))
        await response(scope, receive, send)

    listed = [
        Route("/runs/{run}/view", view, methods=["GET"]),
        Route("/runs/{run}/commands", commands, methods=["GET"]),
    ]
    return listed, fallback


def page(driver: RunDriver) -> str:
    """The page of ``driver``'s run: the tabs of its layout."""
    tabs = tabs_of(driver.app, f"/runs/{driver.run_id}", driver.state)
    name = driver.state.get("run", {}).get("name", "") if driver.state else ""
    return render(f"{name} {driver.run_id}".strip(), tabs, runs_link=True)
