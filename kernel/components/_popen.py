"""``PopenPythonScript``: an existing Python script run as a Work, in a process of its own.

As in Lightning App: ``python script_path *script_args`` through ``subprocess``, its output lines
becoming the Work's logs, ``self.pid`` set once it started and ``self.exit_code`` once it ended; an
exit code other than 0 fails the call with ``ScriptError`` naming it. The process runs in the Work's
folder with ``env`` added to the Work's environment (Lightning App replaced the environment with
``env``, losing ``PATH``; adding is what a user expects). Stopping the Work stops the script too.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from lightning_kernel.errors import ScriptError

from .._work import LightningWork
from ..utilities._tracer import Tracer
from ._script import ScriptLocation, split_args

STOP_GRACE_S = 5.0
"""Seconds the script gets to end after SIGTERM, when the Work stops, before it is killed."""


class PopenPythonScript(LightningWork):
    """Runs the Python script ``script_path`` in a subprocess (see the module docstring)."""

    def on_before_run(self) -> None:
        """Called before the script starts."""

    def on_after_run(self) -> None:
        """Called after the script ended with exit code 0."""

    def configure_tracer(self) -> Tracer:
        """Kept from Lightning App (whose Popen variant never used it)."""
        return Tracer()

    def __init__(
        self,
        script_path: str | os.PathLike[str],
        script_args: list[Any] | str | None = None,
        env: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._lk_script = ScriptLocation(os.fspath(script_path))
        if not self._lk_script.exists():
            raise FileNotFoundError(f"The provided `script_path` {os.fspath(script_path)} wasn't found.")
        self.script_path = os.fspath(script_path)
        self.script_args = split_args(script_args)
        self.env = dict(env) if env else None
        self.pid: int | None = None
        self.exit_code: int | None = None

    def run(self) -> None:
        self.on_before_run()
        self._run_with_subprocess_popen()
        self.on_after_run()

    def _run_with_subprocess_popen(self) -> None:
        script = self._lk_script.find(self._display_name())
        cmd = [sys.executable, script, *self.script_args]
        env = {**os.environ, **{str(k): str(v) for k, v in (self.env or {}).items()}}
        env.setdefault("PYTHONUNBUFFERED", "1")  # its lines reach the logs as they are printed
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            text=True,
            errors="replace",
            bufsize=1,
            close_fds=True,
        )
        try:
            self.pid = proc.pid
            assert proc.stdout is not None
            for line in proc.stdout:
                print(line.rstrip("\n"))
            code = proc.wait()
        finally:
            if proc.poll() is None:  # the Work was stopped (or failed) while the script ran
                proc.terminate()
                try:
                    proc.wait(STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        self.exit_code = code
        if code != 0:
            raise ScriptError(self._display_name(), self.script_path, code)


__all__ = ["PopenPythonScript"]
