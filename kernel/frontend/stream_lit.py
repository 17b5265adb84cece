"""``StreamlitFrontend``: a flow's UI written with Streamlit (needs streamlit).

The kernel that hosts the run serves it, as Lightning App did: ``streamlit run`` on a small launcher
(``_launcher_streamlit``) that calls ``render_fn(state)`` at each rerun, ``state`` the flow's
``AppState``; ``_frontend_serve`` starts and stops that server.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from .frontend import Frontend, check_own_process_ui

LAUNCHER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_launcher_streamlit.py")


class StreamlitFrontend(Frontend):
    """A UI drawn by ``render_fn(state)`` with Streamlit. Needs streamlit (``pip install streamlit``):
    without it, making one raises ``MissingExtra``."""

    def __init__(self, render_fn: Callable[..., Any]) -> None:
        check_own_process_ui(
            "StreamlitFrontend",
            "streamlit",
            "lightning-kernel[streamlit]",
            "render_fn",
            render_fn,
            "a function",
        )
        super().__init__()
        self.render_fn = render_fn

    def _lk_render(self) -> Callable[..., Any]:
        """The function the server's launcher imports and calls."""
        return self.render_fn

    def _lk_server(self, port: int) -> tuple[list[str], str]:
        """The command that serves this UI on 127.0.0.1:``port``, and the path of its page there."""
        command = [sys.executable, "-m", "streamlit", "run", LAUNCHER, "--server.headless", "true"]
        command += ["--server.address", "127.0.0.1", "--server.port", str(port)]
        # No watcher of the launcher's folder (the package's: nothing there changes), and no usage
        # statistics sent from the page.
        command += ["--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"]
        return command, "/"


__all__ = ["StreamlitFrontend"]
