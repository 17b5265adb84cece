"""The HTTP API of ``serve``: its routes (Starlette), each behind the guard of ``_api_guard``.

The routes, and what each takes and answers, are described in ``_openapi`` (served at
``GET /api/openapi.json``); a test holds the two together. An error is JSON, ``{"error": message,
"kind": <the KernelError's class>, ...its data}`` (``RunNotFound`` adds ``run``, ``ParameterError``
``parameter``...), so that the SDK raises the error the kernel raised.
"""

from __future__ import annotations

import asyncio
import html
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ._api_files import routes as file_routes
from ._api_guard import BodyTooLarge, Guard, Query, ServerStopping
from ._api_streams import EVENTS_TICK_S, LOGS_TICK_S, event_stream, log_stream
from ._code import Code
from ._projection import RUN_ENDED, component_tree
from ._views import check_component, event_json, log_json, run_json, run_state
from .errors import (
    ComponentNotFound,
    KernelError,
    LeaseHeld,
    ParameterError,
    RunNotFound,
    ServiceUnreachable,
)

if TYPE_CHECKING:
    from ._server import Server

MAX_LIMIT = 10_000
MAX_SEQ = 2**63 - 1  # SQL's BIGINT


def make_app(server: Server) -> Any:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, Response
    from starlette.routing import Route

    from ._flow_http import NotHosted
    from ._flow_http import routes as flow_routes
    from ._ui import routes as ui_routes

    kernel = server.kernel

    def store() -> Any:
        assert kernel.store is not None
        return kernel.store

    def error(status: int, message: str, **extra: Any) -> Response:
        return JSONResponse({"error": message, **extra}, status_code=status)

    async def run_info(run_id: str) -> Any:
        return await asyncio.to_thread(store().run, run_id)

    async def list_runs(request: Request) -> Response:
        q = Query(request)
        limit = q.integer("limit", 100, 1, MAX_LIMIT)
        runs = await asyncio.to_thread(store().runs, limit)
        return JSONResponse([run_json(r) for r in runs])

    async def submit(request: Request) -> Response:
        import cloudpickle

        # The guard has checked the token and the declared length; the limit holds while it streams.
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
        if not body:
            return error(400, "the request body must be a cloudpickled LightningApp")
        # Stored first: nothing is unpickled unless it came from the kernel's own artifact store.
        ref = await asyncio.to_thread(kernel.artifacts.put_bytes, bytes(body))
        del body
        try:
            argv = json.loads(request.headers.get("x-lk-argv") or "[]")
            env = json.loads(request.headers.get("x-lk-env") or "{}")
        except ValueError:
            return error(
                400, "X-LK-Argv must be a JSON list of strings and X-LK-Env a JSON object of strings"
            )
        if not (isinstance(argv, list) and all(isinstance(a, str) for a in argv)) or not (
            isinstance(env, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())
        ):
            return error(
                400, "X-LK-Argv must be a JSON list of strings and X-LK-Env a JSON object of strings"
            )
        code = None
        if request.headers.get("x-lk-code"):
            code = Code(
                request.headers["x-lk-code"],
                request.headers.get("x-lk-module", ""),
                request.headers.get("x-lk-entry", ""),
            )
            if not (code.module.isidentifier() and code.entry.endswith(".py")):
                return error(400, "X-LK-Module must be a module name and X-LK-Entry the app file's path")
            try:
                # The app's classes are pickled by name: its module comes from its code artifact.
                await asyncio.to_thread(kernel.load_code, code, argv)
            except Exception as exc:
                return error(400, f"the app's code {code.ref} cannot be loaded: {type(exc).__name__}: {exc}")
        try:
            app = cloudpickle.loads(await asyncio.to_thread(kernel.artifacts.get_bytes, ref))
        except Exception as exc:
            return error(400, f"the body is not a pickled LightningApp: {type(exc).__name__}: {exc}")
        from ._app import LightningApp

        if not isinstance(app, LightningApp):
            return error(400, f"the body unpickles to a {type(app).__name__}, not a LightningApp")
        app_file = request.headers.get("x-lk-app-file", "app.py")
        name = request.headers.get("x-lk-name") or None
        driver = await kernel.create_run(app, app_file, name, code, argv=argv, env=env)
        server._host(driver)
        await recorded()
        return JSONResponse({"id": driver.run_id}, status_code=201)

    async def upload_code(request: Request) -> Response:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
        if not body:
            return error(
                400, "the request body must be an app folder's archive (lightning_kernel._code.pack)"
            )
        ref = await asyncio.to_thread(kernel.artifacts.put_bytes, bytes(body))
        return JSONResponse({"ref": ref}, status_code=201)

    async def get_run(request: Request) -> Response:
        return JSONResponse(run_json(await run_info(request.path_params["run"])))

    async def get_state(request: Request) -> Response:
        at = Query(request).integer("at", None, 1, MAX_SEQ)
        state = await asyncio.to_thread(run_state, store(), request.path_params["run"], at, "at")
        return JSONResponse({"run": state["run"], "root": component_tree(state), "works": state["works"]})

    async def get_events(request: Request) -> Response:
        q = Query(request)
        after = q.integer("after", 0, 0, MAX_SEQ)
        limit = q.integer("limit", 1000, 1, MAX_LIMIT)
        wait = q.seconds("wait")
        info = await run_info(request.path_params["run"])
        events = await server.poll(
            request, lambda: store().events(info.id, after_seq=after, limit=limit), wait, EVENTS_TICK_S
        )
        return JSONResponse([event_json(e) for e in events])

    async def get_logs(request: Request) -> Response:
        q = Query(request)
        after = q.integer("after", 0, 0, MAX_SEQ)
        limit = q.integer("limit", 1000, 1, MAX_LIMIT)
        wait = q.seconds("wait")
        component = request.query_params.get("component")
        info = await run_info(request.path_params["run"])
        if component is not None:
            await asyncio.to_thread(check_component, store(), info, component)
        lines = await server.poll(
            request,
            lambda: store().logs(info.id, component=component, after_seq=after, limit=limit),
            wait,
            LOGS_TICK_S,
        )
        return JSONResponse([log_json(x) for x in lines])

    async def stream_events(request: Request) -> Response:
        after, info = await stream_start(request)
        return stream_response(event_stream(server, info.id, after))

    async def stream_logs(request: Request) -> Response:
        after, info = await stream_start(request)
        component = request.query_params.get("component")
        if component is not None:
            await asyncio.to_thread(check_component, store(), info, component)
        return stream_response(log_stream(server, info.id, component, after))

    async def stream_start(request: Request) -> tuple[int, Any]:
        # A reconnecting EventSource says where it was in Last-Event-ID; ?after= wins.
        last = request.headers.get("last-event-id", "")
        after = Query(request).integer("after", int(last) if last.isdigit() else 0, 0, MAX_SEQ)
        return after, await run_info(request.path_params["run"])

    def stream_response(messages: Any) -> Response:
        from starlette.responses import StreamingResponse

        return StreamingResponse(
            messages, media_type="text/event-stream", headers={"X-Accel-Buffering": "no"}
        )

    async def resume_run(request: Request) -> Response:
        info = await run_info(request.path_params["run"])
        if info.status in RUN_ENDED:
            return error(409, f"run {info.id} already ended ({info.status}); there is nothing to resume")
        if info.id in server.tasks:
            return error(409, f"run {info.id} is running on this server; there is nothing to resume")
        holder = await kernel.host_of(info.id)
        if holder is not None and not holder.is_dead_here():
            return error(409, f"run {info.id} is driven by {holder.describe()}; stop it there first")
        driver = await kernel.resume_run(info.id)
        server._host(driver)
        await recorded()
        return JSONResponse({"id": info.id, "resumed": True}, status_code=202)

    async def recorded() -> None:
        """Return once what was published is in SQL, so that the caller's next request finds it."""
        assert kernel.recorder is not None and kernel.bus is not None
        await kernel.recorder.wait_recorded(await kernel.bus.last_seq(), timeout=10)

    async def openapi(request: Request) -> Response:
        from ._openapi import spec

        return JSONResponse(spec())

    async def stop_run(request: Request) -> Response:
        info = await run_info(request.path_params["run"])
        if info.status in RUN_ENDED:
            return error(409, f"run {info.id} already ended ({info.status})")
        await kernel.request_stop(info.id, "stopped through the HTTP API")
        return JSONResponse({"id": info.id, "stop_requested": True}, status_code=202)

    async def view(request: Request) -> Response:
        from ._ui import run_page, runs_page

        driving = server.gateway.driving(server.default_run) if server.default_run else None
        if driving is not None and "runs" not in request.query_params:
            # `run app`: its run's page (with the tabs of its layout), as Lightning App's /view.
            return HTMLResponse(run_page(driving, driving.run_id))
        runs = await asyncio.to_thread(store().runs, 100)
        rows = "".join(
            f"<tr><td>{html.escape(r.id)}</td><td>{html.escape(r.name)}</td><td>{html.escape(r.status)}</td>"
            f'<td>{r.events}</td><td><a href="/runs/{html.escape(r.id)}/view">page</a></td></tr>'
            for r in runs
        )
        # The web UI (``_ui``), and the runs as a table for a browser without scripts.
        return HTMLResponse(
            runs_page(
                "<h1>Runs</h1><table><tr><th>run</th><th>name</th><th>status</th><th>events</th><th></th></tr>"
                f"{rows}</table>"
            )
        )

    async def on_error(request: Request, exc: Exception) -> Response:
        kind = {"kind": type(exc).__name__}
        if isinstance(exc, ParameterError):
            return error(400, str(exc), parameter=exc.name, **kind)
        if isinstance(exc, RunNotFound):
            return error(404, str(exc), run=exc.run_id, **kind)
        if isinstance(exc, ComponentNotFound):
            return error(404, str(exc), run=exc.run_id, component=exc.component, known=exc.known, **kind)
        if isinstance(exc, ServiceUnreachable):
            return error(503, str(exc), **kind)
        if isinstance(exc, NotHosted):
            return error(409, str(exc), **kind)
        if isinstance(exc, LeaseHeld):
            return error(409, str(exc), what=exc.what, holder=exc.holder, ttl=exc.ttl, **kind)
        if isinstance(exc, BodyTooLarge):
            return error(413, f"{exc} (serve --max-body); nothing was stored")
        if isinstance(exc, ServerStopping):
            return error(503, f"{exc}; nothing was stored")
        if isinstance(exc, KernelError):
            return error(400, str(exc), **kind)
        raise exc

    guard = Middleware(
        Guard,
        token=server.token,
        host=server.host,
        port=lambda: server.port,
        max_body=server.max_body,
        stopping=server.stopping,
    )
    own = [
        *ui_routes(server),
        Route("/api/runs", list_runs, methods=["GET"]),
        Route("/api/runs", submit, methods=["POST"]),
        Route("/api/code", upload_code, methods=["POST"]),
        Route("/api/runs/{run}", get_run),
        Route("/api/runs/{run}/state", get_state),
        Route("/api/runs/{run}/events", get_events),
        Route("/api/runs/{run}/logs", get_logs),
        Route("/api/runs/{run}/events/stream", stream_events),
        Route("/api/runs/{run}/logs/stream", stream_logs),
        Route("/api/runs/{run}/stop", stop_run, methods=["POST"]),
        Route("/api/runs/{run}/resume", resume_run, methods=["POST"]),
        *engine_routes(server, run_info),
        *file_routes(server, run_info),
        Route("/api/openapi.json", openapi),
        Route("/view", view),
    ]
    pages, flows = flow_routes(server)
    app = Starlette(
        routes=[*own, *pages],
        middleware=[guard],
        exception_handlers={KernelError: on_error, BodyTooLarge: on_error, ServerStopping: on_error},
    )
    app.router.default = flows  # every other path: the flows' API routes and frontend files
    return app


# -- replay, diff and fork -------------------------------------------------------------------------------


def engine_routes(server: Server, run_info: Callable[[str], Awaitable[Any]]) -> list[Any]:
    """``POST /replay``, ``GET /diff``, ``POST /fork`` of a run: the engines of ``_replay``, ``_diff``
    and ``_fork``, each with the run's own recorded code (a client's app file is not the server's)."""
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    kernel = server.kernel

    def store() -> Any:
        assert kernel.store is not None
        return kernel.store

    async def body(request: Request) -> dict[str, Any]:
        raw = await request.body()
        try:
            got = json.loads(raw or b"{}")
        except ValueError:
            raise KernelError("the request body must be a JSON object") from None
        if not isinstance(got, dict):
            raise KernelError("the request body must be a JSON object")
        return got

    def seq(got: dict[str, Any], name: str, required: bool = False) -> int | None:
        value = got.get(name)
        if value is None and not required:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEQ:
            raise ParameterError(name, f"{name}={value!r} must be an event's seq (an integer)")
        return value

    async def replay(request: Request) -> Response:
        from ._replay import load_run_app, replay_history

        got = await body(request)
        until = seq(got, "until")
        info = await run_info(request.path_params["run"])

        def run() -> dict[str, Any]:
            records = store().events(info.id)
            return dict(replay_history(load_run_app(kernel.config, records), records, until=until).to_json())

        return JSONResponse(await asyncio.to_thread(run))

    async def diff(request: Request) -> Response:
        from ._diff import diff_runs

        q = Query(request)
        from_seq = q.integer("from", None, 0, MAX_SEQ)
        to_seq = q.integer("to", None, 0, MAX_SEQ)
        other = request.query_params.get("other")
        info = await run_info(request.path_params["run"])
        return JSONResponse(await asyncio.to_thread(diff_runs, store(), info.id, other, from_seq, to_seq))

    async def fork(request: Request) -> Response:
        got = await body(request)
        at = seq(got, "at", required=True)
        assert at is not None
        info = await run_info(request.path_params["run"])
        driver = await kernel.fork_run(info.id, at)
        server._host(driver)
        assert kernel.recorder is not None and kernel.bus is not None
        await kernel.recorder.wait_recorded(await kernel.bus.last_seq(), timeout=10)
        return JSONResponse({"id": driver.run_id, "origin": info.id, "at": at}, status_code=201)

    return [
        Route("/api/runs/{run}/replay", replay, methods=["POST"]),
        Route("/api/runs/{run}/diff", diff),
        Route("/api/runs/{run}/fork", fork, methods=["POST"]),
    ]
