"""What the launchers of ``StreamlitFrontend`` and ``PanelFrontend`` share, in the server's process:
the render function, imported as the kernel imported it, and the ``AppState`` of the frontend's flow.

The kernel (``_frontend_serve``) starts the server with this in its environment:

- ``LK_FRONTEND_FLOW``: the flow's name (``root``, ``root.ui``);
- ``LK_FRONTEND_RENDER``: ``module:qualname`` of the render function;
- ``LK_FRONTEND_APP_FILE``, ``LK_FRONTEND_APP_MODULE``, ``LK_FRONTEND_APP_ARGV`` (JSON): the run's
  app file, the module name the kernel gave it, and the run's ``--app_args``;
- ``LK_APP_STATE_URL``, ``LK_RUN``, ``LK_SERVER_TOKEN``: where ``AppState`` reads and writes (the run's
  HTTP server, the run, the server's token: every write needs it).

The app file is run as the kernel ran it (``_app.exec_file``: as ``__main__`` with the run's
arguments, then named as the kernel named it), once per server process: a function defined in it
sees the globals it sees in the kernel, and a function of a module beside it imports as it did there.
Lightning App imported the function's own file (``pydoc.importfile``) under another name, where its
``if __name__ == "__main__":`` globals were missing.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..utilities.state import AppState

FLOW = "LK_FRONTEND_FLOW"
RENDER = "LK_FRONTEND_RENDER"
APP_FILE = "LK_FRONTEND_APP_FILE"
APP_MODULE = "LK_FRONTEND_APP_MODULE"
APP_ARGV = "LK_FRONTEND_APP_ARGV"


def unshadow(script: str) -> None:
    """Take the folder of ``script`` (this package's) off ``sys.path``: streamlit and bokeh put a
    script's folder first, and this folder's ``panel.py`` would be what ``import panel`` finds."""
    folder = os.path.realpath(os.path.dirname(script))
    sys.path[:] = [p for p in sys.path if os.path.realpath(p or ".") != folder]


def render_function() -> Callable[..., Any]:
    """The render function the environment names, its app file run first (once per process)."""
    app_file, app_module = os.environ.get(APP_FILE, ""), os.environ.get(APP_MODULE, "")
    if app_file:
        # Again at each session: bokeh gives sys.path back as it was after each run of its script.
        folder = os.path.dirname(app_file)
        if folder not in sys.path:
            sys.path.insert(0, folder)
        if app_module not in sys.modules:
            from .._app import exec_file

            exec_file(app_file, app_module, json.loads(os.environ.get(APP_ARGV) or "[]"))
    module_name, _, qualname = os.environ[RENDER].partition(":")
    target: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target


def flow_state() -> AppState:
    """The ``AppState`` of the frontend's flow; it reads the run's state at its first attribute."""
    from ..utilities.state import AppState

    return AppState(my_affiliation=tuple(os.environ[FLOW].split(".")[1:]))


__all__ = [
    "APP_ARGV",
    "APP_FILE",
    "APP_MODULE",
    "FLOW",
    "RENDER",
    "flow_state",
    "render_function",
    "unshadow",
]
