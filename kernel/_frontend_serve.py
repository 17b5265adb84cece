"""The servers of a run's ``StreamlitFrontend`` and ``PanelFrontend`` UIs: subprocesses of the kernel
that hosts the run, as Lightning App started them beside its app.

Each is ``streamlit run`` (``panel serve``) on a launcher of ``frontend/`` that imports the flow's
render function as the kernel imported the app (``frontend/_launcher``), and calls it with the flow's
``AppState``, which reads and writes the run's state through the run's HTTP server (``GET
/api/runs/<run>/state``; ``POST /runs/<run>/__lk__/state`` with the server's token). A server listens
on 127.0.0.1 on a port that was free; its output goes to ``<data dir>/frontends/<run>/<flow>.log``.

Lifetime: the servers of a run start once, when the run's HTTP server starts serving it (``run app``,
``resume``, a run ``serve`` hosts), for the frontends of its layout then: the root flow's, and those
of the child flows that are its tabs (``_layout.live_frontends``). They stop with the run and with
the server (SIGTERM to each one's process group, SIGKILL after ``STOP_S``), and die with the kernel
even when it is killed (PR_SET_PDEATHSIG, as the embedded nats-server: the fork is made on the
loop's thread, the main one, whose end is the process's). A server that ends on its own is not
started again: its tab says it ended, with its exit code and the last lines it wrote.

The run's page frames ``/runs/<run>/ui/<flow>/`` of the kernel's server (``page_of``): a page that
reloads itself until the frontend's server accepts connections, then a redirect to it.

Tried and left: carrying the frontend's traffic through the kernel's server (streamlit and bokeh
talk over a websocket of their own; a proxy would carry every message for nothing on one machine:
a browser on another machine does not reach the frontend, as it did not reach Lightning App's
local one); starting a server at the first view of its tab (a read with a side effect, and a first
view that waits seconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import html
import json
import os
import signal
import socket
import subprocess
import sys
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._flow import LightningFlow
from ._layout import ServedFrontend, live_frontends
from ._natsserver import die_with_parent
from .errors import KernelError
from .frontend import _launcher

if TYPE_CHECKING:
    from ._loop import RunDriver
    from ._server import Server

STOP_S = 5.0
"""Seconds a frontend's server has to exit after SIGTERM before it is killed."""
TAIL_LINES = 8
"""How many of a server's last lines of output its tab shows when it ended."""

_SERVED: weakref.WeakKeyDictionary[LightningFlow, Served] = weakref.WeakKeyDictionary()


class NotServable(KernelError):
    """A frontend whose server cannot be started (a render function its process cannot import)."""


class Served:
    """The server of one flow's frontend, or why there is none."""

    def __init__(self, flow: str, kind: str, log: str) -> None:
        self.flow = flow
        self.kind = kind
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.port = 0
        self.refused = ""
        """Why it was not started."""
        self._listening = False

    def listening(self) -> bool:
        """Whether the server is up and accepts connections (a loopback connect: at once either way)."""
        if self.process is None or self.process.poll() is not None:
            return False
        if not self._listening:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                self._listening = True
        return self._listening

    def ended(self) -> str:
        """Why the frontend is not served (it was refused, its server exited); empty while it is."""
        if self.refused:
            return f"{self.kind} of {self.flow} is not served: {self.refused}"
        code = self.process.poll() if self.process is not None else None
        if code is None:
            return ""
        how = (
            f" (killed by {signal.Signals(-code).name})"
            if code < 0 and -code in signal.valid_signals()
            else ""
        )
        return (
            f"the server of {self.kind} of {self.flow} ended with exit code {code}{how}; {self._tail()} "
            f"(all of its output is in {self.log})"
        )

    def _tail(self) -> str:
        """The last lines of its output (stdout and stderr, in the order it wrote them)."""
        try:
            with open(self.log, "rb") as f:
                f.seek(max(0, os.path.getsize(self.log) - 8192))
                lines = f.read().decode(errors="replace").splitlines()
        except OSError:
            return "it wrote nothing"
        kept = [line.strip() for line in lines if line.strip()][-TAIL_LINES:]
        return "its last lines: " + " | ".join(kept) if kept else "it wrote nothing"


def served(flow: Any) -> Served | None:
    """The server of ``flow``'s frontend, None when none was started for it (or it is no flow)."""
    return _SERVED.get(flow) if isinstance(flow, LightningFlow) else None


def render_target(fn: Callable[..., Any]) -> str:
    """``module:qualname``, by which the server's process imports ``fn``; ``NotServable`` when that
    would not be ``fn`` (a lambda, a function made inside a function, one of a ``__main__``)."""
    module = sys.modules.get(getattr(fn, "__module__", "") or "")
    qualname = getattr(fn, "__qualname__", "")
    target: Any = module
    for part in qualname.split("."):
        target = getattr(target, part, None)
    if module is None or module.__name__ == "__main__" or target is not fn:
        raise NotServable(
            f"its render function {qualname or fn!r} (module {getattr(fn, '__module__', None)!r}) is not "
            "one its server's process can import: define it with `def` at the top level of the app "
            "file or of a module beside it"
        )
    return f"{module.__name__}:{qualname}"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RunFrontends:
    """The frontend servers of one run, started once its state and its HTTP server's port are known."""

    def __init__(self, driver: RunDriver, server: Server) -> None:
        self.driver = driver
        self.server = server
        self.served: dict[str, Served] = {}
        self._starting = asyncio.ensure_future(self._start())

    async def _start(self) -> None:
        # The run's fold holds its app module and arguments once run.created is in; `serve` knows its
        # port once uvicorn bound it (a run it resumes as it starts comes before that).
        while not (self.driver.state and self.server.port):
            await asyncio.sleep(0.05)
        for flow, frontend in live_frontends(self.driver.app):
            if flow.name not in self.served:
                self.served[flow.name] = _SERVED[flow] = self._spawn(flow, frontend)

    def _spawn(self, flow: LightningFlow, frontend: ServedFrontend) -> Served:
        kind = type(frontend).__name__
        folder = os.path.join(self.server.kernel.config.data_dir, "frontends", self.driver.run_id)
        one = Served(flow.name, kind, os.path.join(folder, f"{flow.name}.log"))
        try:
            env = {**os.environ, **self._env(flow, frontend)}
            one.port = _free_port()
            command, path = frontend._lk_server(one.port)
            os.makedirs(folder, exist_ok=True)
            with open(one.log, "ab") as log:
                # Forked here, on the loop's (main) thread: PR_SET_PDEATHSIG is of the forking thread.
                one.process = subprocess.Popen(
                    command,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    preexec_fn=functools.partial(die_with_parent, os.getpid()),
                    start_new_session=True,
                )
        except (NotServable, OSError) as exc:
            one.refused = str(exc)
            return one
        one.url = f"http://127.0.0.1:{one.port}{path}"
        return one

    def _env(self, flow: LightningFlow, frontend: ServedFrontend) -> dict[str, str]:
        run = self.driver.state["run"]
        module = sys.modules.get(run.get("module") or "")
        env = {
            _launcher.FLOW: flow.name,
            _launcher.APP_FILE: getattr(module, "__file__", None) or "",
            _launcher.APP_MODULE: module.__name__ if module is not None else "",
            _launcher.APP_ARGV: json.dumps(list(run.get("argv") or [])),
            "LK_APP_STATE_URL": self.server.url(),
            "LK_RUN": self.driver.run_id,
            "LK_SERVER_TOKEN": self.server.token,
        }
        render = frontend._lk_render()
        if render is not None:
            env[_launcher.RENDER] = render_target(render)
        return env

    async def stop(self) -> None:
        """End every server of the run: SIGTERM to its process group, SIGKILL after ``STOP_S``."""
        self._starting.cancel()
        with contextlib.suppress(BaseException):
            await self._starting
        # Only those still there: the pid of one that exited and was reaped may be another's now.
        running = [s.process for s in self.served.values() if s.process and s.process.poll() is None]
        for process in running:
            _signal(process, signal.SIGTERM)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STOP_S
        while any(p.poll() is None for p in running) and loop.time() < deadline:
            await asyncio.sleep(0.05)
        for process in running:
            if process.poll() is None:
                _signal(process, signal.SIGKILL)
                process.wait()


_BY_SERVER: weakref.WeakKeyDictionary[Server, dict[str, RunFrontends]] = weakref.WeakKeyDictionary()


def start(server: Server, driver: RunDriver) -> None:
    """Start the frontend servers of ``driver``'s run, which ``server`` now serves (once per run)."""
    runs = _BY_SERVER.setdefault(server, {})
    if driver.run_id not in runs:
        runs[driver.run_id] = RunFrontends(driver, server)


async def stop(server: Server, run_id: str | None = None) -> None:
    """Stop the frontend servers of ``run_id`` (every run's, without one) that ``server`` started."""
    runs = _BY_SERVER.get(server, {})
    for one in [run_id] if run_id is not None else list(runs):
        frontends = runs.pop(one, None)
        if frontends is not None:
            await frontends.stop()


def _signal(process: subprocess.Popen[bytes], signum: int) -> None:
    """``signum`` to the server and what it started (its own session: its pid is its group's)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def page_of(flow: Any) -> Any:
    """The answer to ``GET /runs/<run>/ui/<flow>/`` for a frontend with a server: a redirect to it
    once it accepts connections, a page that reloads itself until then, or why it is not served (503);
    None when ``flow`` has no such frontend (its tab would be a static frontend's, or nothing)."""
    from starlette.responses import HTMLResponse, RedirectResponse

    one = served(flow)
    if one is None:
        return None
    framed = {"x-frame-options": "SAMEORIGIN"}  # the run's page frames it (the guard's default: DENY)
    why = one.ended()
    if why:
        return HTMLResponse(_note(why), status_code=503, headers=framed)
    if one.listening():
        return RedirectResponse(one.url, status_code=307, headers=framed)
    waiting = f"starting the server of {one.kind} of {one.flow}..."
    return HTMLResponse(_note(waiting, reload=True), headers=framed)


def _note(text: str, reload: bool = False) -> str:
    refresh = '<meta http-equiv="refresh" content="1">' if reload else ""
    return (
        f"<!doctype html><meta charset=utf-8>{refresh}<title>{html.escape(text[:80])}</title>"
        f'<p style="font-family:sans-serif;padding:12px">{html.escape(text)}</p>'
    )


__all__ = ["NotServable", "RunFrontends", "Served", "page_of", "render_target", "served", "start", "stop"]
