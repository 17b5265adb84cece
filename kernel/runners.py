"""Lightning App's ``lightning.app.runners``: ``MultiProcessRuntime(app).dispatch()`` at the end of an app
file runs the app when the file is run with ``python app.py`` (under an IDE's debugger, as Lightning
App's debugging guide does it), exactly as ``lightning-kernel run app app.py`` would: the embedded
kernel runs the file again, as ``__main__``, and the flow runs in this process, so a breakpoint in
``root.run()`` stops there. When the kernel itself runs the file (``run app``, a worker, a resume),
``dispatch()`` does nothing: the kernel runs the app. The file run is the one that defines the app's
root flow, so ``dispatch()`` called from elsewhere (a test function) runs it too.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from ._app import LOADING, LightningApp


class MultiProcessRuntime:
    """Runs ``app`` with the embedded kernel (its Works as local processes), from the app file itself.

    ``start_server=False`` serves no page or flow API (``run app --no-ui``); ``env_vars`` are set for the
    flow and every Work (``--env``). Lightning App's other arguments (``host``, ``port``, ...) are
    accepted: the kernel's server takes 7501 or a free port, as ``run app`` does."""

    def __init__(
        self,
        app: LightningApp,
        start_server: bool = True,
        env_vars: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(app, LightningApp):
            raise TypeError(f"MultiProcessRuntime needs a LightningApp, got {type(app).__name__}")
        self.app = app
        self.start_server = start_server
        self.env_vars = dict(env_vars or {})

    def dispatch(self, *args: Any, open_ui: bool = False, name: str = "", **kwargs: Any) -> None:
        """Run the app to its end (a failed run exits with its code), unless the kernel is loading it."""
        if LOADING:
            return
        app_file = self._app_file()
        from ._config import Config
        from ._embedded import run_embedded

        code = run_embedded(
            Config.from_env(),
            os.path.abspath(app_file),
            name or None,
            argv=sys.argv[1:],
            env=self.env_vars,
            ui=self.start_server,
            open_ui=open_ui,
        )
        if code:
            sys.exit(code)

    def _app_file(self) -> str:
        """The file that defines the app's root flow, which the kernel runs (and every worker): it must
        make the app at its top level, as ``lightning-kernel run app`` needs."""
        import inspect

        try:
            path = inspect.getfile(type(self.app.root))
        except (TypeError, OSError):
            path = ""
        if not path or not os.path.isfile(path):
            raise RuntimeError(
                "MultiProcessRuntime(app).dispatch() runs the file that defines the app's root flow, and "
                f"{type(self.app.root).__qualname__} comes from no file; run an app file with "
                "`lightning-kernel run app app.py`"
            )
        return os.path.abspath(path)  # one without an app at its top level: the kernel says so


__all__ = ["MultiProcessRuntime"]
