"""``PanelFrontend``: a flow's UI written with Panel (needs panel).

The kernel that hosts the run serves it, as Lightning App did: ``panel serve`` on the script given,
or on a small launcher (``_launcher_panel``) that calls the function given, once per browser session;
``_frontend_serve`` starts and stops that server.
"""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Callable
from typing import Any

from .frontend import Frontend, check_own_process_ui

LAUNCHER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_launcher_panel.py")


class PanelFrontend(Frontend):
    """A UI drawn by ``entry_point`` with Panel: a function (called with an ``AppStateWatcher``-like
    object whose ``state`` is the flow's ``AppState``, when it takes an argument), or the path of a
    script (relative: to the working directory, else to the folder of the flow's file). Needs panel
    (``pip install panel``): without it, making one raises ``MissingExtra``."""

    def __init__(self, entry_point: Callable[..., Any] | str) -> None:
        check_own_process_ui(
            "PanelFrontend",
            "panel",
            "lightning-kernel[panel]",
            "entry_point",
            entry_point,
            "a function or a script's path",
        )
        super().__init__()
        self.entry_point = entry_point

    def _lk_render(self) -> Callable[..., Any] | None:
        """The function the server's launcher imports and calls; None for a script."""
        return None if isinstance(self.entry_point, str) else self.entry_point

    def _lk_script(self) -> str:
        """The script ``panel serve`` runs: the entry point's file, or the launcher of its function."""
        if not isinstance(self.entry_point, str):
            return LAUNCHER
        path = self.entry_point
        if not os.path.isabs(path) and not os.path.exists(path) and self.flow is not None:
            try:
                path = os.path.join(os.path.dirname(inspect.getfile(type(self.flow))), path)
            except TypeError:  # a class without a file (made in a notebook): the working directory
                pass
        return os.path.abspath(path)

    def _lk_server(self, port: int) -> tuple[list[str], str]:
        """The command that serves this UI on 127.0.0.1:``port``, and the path of its page there."""
        script = self._lk_script()
        if not os.path.isfile(script):
            raise FileNotFoundError(f"PanelFrontend({self.entry_point!r}): there is no script {script}")
        command = [sys.executable, "-m", "panel", "serve", script, "--address", "127.0.0.1"]
        command += ["--port", str(port)]
        # The page's websocket comes from the page itself, whichever loopback name its URL used.
        for name in ("127.0.0.1", "localhost"):
            command += ["--allow-websocket-origin", f"{name}:{port}"]
        return command, "/" + os.path.splitext(os.path.basename(script))[0]


__all__ = ["PanelFrontend"]
