"""The web UI: the pages at ``/view`` and ``/runs/{run}/view``, and what only they ask for.

The pages are one single-page app, built from ``ui/`` (Vite, Preact, uPlot) into ``ui_dist/``, which
ships in the wheel: ``pip install`` needs no Node, and ``.ci/run`` checks that what is shipped is what
the sources build. The server answers a page with the app's ``index.html``, into which it writes a
``<script id="lk-boot">`` naming the page (``runs``, or ``run`` and its id) and, for a run this
server drives, its layout's tabs as plain HTML in ``<noscript>`` (a browser without scripts still
reaches them). Everything else the app reads from the HTTP API, as any client does, with the
token's cookie that ``GET /view?token=`` set::

    GET /_lk/ui/{file}              the app's files (no CDN: it works offline)
    GET /api/runs/stream            the runs, as server-sent ``runs`` messages whenever they change
    GET /api/runs/{run}/layout      the tabs of the run's configure_layout() (a run this server drives)

Tried and left: rendering the pages on the server (every live view would need its own endpoint and
a reload); a runs page that polls ``/api/runs`` (the issue asks for the stream, and the recorder's
signal is already there for the events' streams).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import os
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from . import _sse as sse
from ._api_streams import EVENTS_TICK_S, _keep_alive
from ._views import run_json
from .errors import KernelError

if TYPE_CHECKING:
    from ._loop import RunDriver
    from ._server import Server

DIST = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ui_dist")
ASSETS = "/_lk/ui"
BOOT_MARK = "<!--lk-boot-->"
RUNS_EVERY_S = 0.5
"""The runs stream sends at most this often: a busy run changes its ``last_seq`` at every event."""
RUNS_LIMIT = 200


class UiMissing(KernelError):
    """The built UI is not in the package (a checkout where ``ui/`` was not built)."""


@functools.lru_cache(maxsize=1)
def _index(mtime: float) -> str:
    with open(os.path.join(DIST, "index.html"), encoding="utf-8") as f:
        text = f.read()
    if BOOT_MARK not in text:
        raise UiMissing(
            f"{DIST}/index.html has no {BOOT_MARK}: rebuild it (cd ui && npm ci && npm run build)"
        )
    return text


def page(boot: dict[str, Any], fallback: str = "") -> str:
    """The app's ``index.html`` with ``boot`` (what page it is) and a ``<noscript>`` ``fallback``."""
    path = os.path.join(DIST, "index.html")
    try:
        index = _index(os.path.getmtime(path))
    except FileNotFoundError:
        raise UiMissing(
            f"the web UI is not built ({path} is missing): cd ui && npm ci && npm run build"
        ) from None
    # JSON in a <script> element: "</" must not end it early.
    data = json.dumps(boot, separators=(",", ":")).replace("</", "<\\/")
    html = f'<script id="lk-boot" type="application/json">{data}</script>'
    if fallback:
        html += f"<noscript>{fallback}</noscript>"
    return index.replace(BOOT_MARK, html, 1)


def run_page(driver: RunDriver | None, run_id: str, runs_link: bool = True) -> str:
    """The page of ``run_id``; with its layout's tabs for browsers without scripts when ``driver``
    (this server drives the run) is given."""
    fallback = ""
    if driver is not None:
        from ._flow_http import page as layout_page

        fallback = layout_page(driver).removeprefix("<!doctype html>")
    return page({"page": "run", "run": run_id, "runs_link": runs_link}, fallback)


def runs_page(fallback: str = "") -> str:
    return page({"page": "runs"}, fallback)


async def runs_stream(server: Server, limit: int) -> AsyncIterator[bytes]:
    """The newest ``limit`` runs, then again each time they change (a run's status or last event);
    it stops when the server stops."""
    store = server.kernel.store
    recorder = server.kernel.recorder
    assert store is not None
    last: list[dict[str, Any]] | None = None
    quiet = 0.0
    while not server.stopping.is_set():
        seen = recorder.recorded_seq if recorder is not None else 0
        runs = [run_json(r) for r in await asyncio.to_thread(store.runs, limit)]
        if runs != last:
            last, quiet = runs, 0.0
            yield sse.encode("runs", runs)
            await asyncio.sleep(RUNS_EVERY_S)
            continue
        quiet = await _keep_alive(server, seen, EVENTS_TICK_S, quiet)
        if quiet == 0.0:
            yield sse.KEEP_ALIVE


def routes(server: Server) -> list[Any]:
    """The routes of this module (before ``_api``'s own, so that ``/api/runs/stream`` is not a run)."""
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    from ._layout import tabs_of

    async def asset(request: Request) -> Response:
        name = request.path_params["file"]
        path = os.path.join(DIST, name)
        if name.startswith(".") or name == "index.html" or not os.path.isfile(path):
            return JSONResponse({"error": f"the web UI has no file {name!r}"}, status_code=404)
        # Fixed names (the build's): revalidated by ETag at each load, so an upgrade shows at once.
        return FileResponse(path, headers={"cache-control": "no-cache"})

    async def stream(request: Request) -> Response:
        from ._api_guard import Query

        limit = Query(request).integer("limit", 100, 1, RUNS_LIMIT)
        return StreamingResponse(
            runs_stream(server, limit), media_type="text/event-stream", headers={"X-Accel-Buffering": "no"}
        )

    async def layout(request: Request) -> Response:
        run = request.path_params["run"]
        driver = server.gateway.driving(run)
        if driver is None:
            store = server.kernel.store
            assert store is not None
            info = await asyncio.to_thread(store.run, run)  # RunNotFound: a 404
            return JSONResponse({"run": info.id, "hosted": False, "tabs": []})
        tabs = tabs_of(driver.app, f"/runs/{driver.run_id}", driver.state)
        return JSONResponse(
            {"run": driver.run_id, "hosted": True, "tabs": [dataclasses.asdict(t) for t in tabs]}
        )

    return [
        Route(ASSETS + "/{file}", asset, methods=["GET"]),
        Route("/api/runs/stream", stream, methods=["GET"]),
        Route("/api/runs/{run}/layout", layout, methods=["GET"]),
    ]
