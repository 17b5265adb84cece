"""``ServeStreamlit``: a Work whose ``render()`` is a streamlit app served on its ``host`` and ``port``.

As in Lightning App, ``run()`` starts ``streamlit run`` in a subprocess on a small script
(``_streamlit_page``) that imports the Work's class from its file, makes an instance holding the
Work's state as it was when the server started, builds the model once per session (``build_model()``,
then ``self.model``) and calls ``render()``. streamlit is an optional dependency: making a
ServeStreamlit without it raises ``ModuleNotFoundError`` saying ``pip install streamlit``.

Lightning App's page read the Work's state live through the app's REST API, as a flow's
``StreamlitFrontend`` does here (``_frontend_serve``); this one does not. Its reads would mostly not
differ (the Work's state changes in its own process, whose ``run()`` waits on the server meanwhile),
and what would is out of reach: the worker, which may be on another host, is not told the run's HTTP
server or its token, and the state API sets flows' attributes only, not a Work's, so ``render()``
setting one changes its own copy.
"""

from __future__ import annotations

import abc
import inspect
import json
import os
import subprocess
import sys
from typing import Any

from .._work import LightningWork
from ._extras import require

PAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_streamlit_page.py")


class ServeStreamlit(LightningWork, abc.ABC):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        require(type(self).__name__, "streamlit")
        super().__init__(*args, **kwargs)
        self.ready = False
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def model(self) -> Any:
        return getattr(self, "_model", None)

    @abc.abstractmethod
    def render(self) -> None:
        """Override: the streamlit page (``import streamlit as st`` inside)."""

    def build_model(self) -> Any:
        """Optionally override: the model, built once per browser session."""
        return None

    def run(self) -> None:
        env = {
            **os.environ,
            "LK_STREAMLIT_WORK_FILE": inspect.getfile(type(self)),
            "LK_STREAMLIT_WORK_CLASS": type(self).__qualname__,
            "LK_STREAMLIT_WORK_STATE": json.dumps(self._lk_vars()),
            "LIGHTNING_COMPONENT_NAME": self.name,
        }
        command = [sys.executable, "-m", "streamlit", "run", PAGE]
        command += ["--server.address", str(self.host), "--server.port", str(self.port)]
        command += ["--server.headless", "true"]  # no browser opened by the Work
        self._process = subprocess.Popen(command, env=env)
        self.ready = True
        try:
            code = self._process.wait()
        finally:
            if self._process.poll() is None:  # the Work was stopped
                self._process.kill()
                self._process.wait()
        if code != 0:
            from lightning_kernel.errors import ScriptError

            raise ScriptError(self._display_name(), "streamlit", code)

    def configure_layout(self) -> str:
        return self.url


__all__ = ["ServeStreamlit"]
