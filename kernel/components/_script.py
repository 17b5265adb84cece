"""What the script components share: their arguments, and finding the script on the Work's host.

A Work runs in its own folder (the worker's current directory), not where ``lightning-kernel run app``
was started, and maybe on another machine that got the app's folder as a code artifact. So a
relative ``script_path`` is looked for, in order: in the Work's folder; where it was when the
component was made (the same machine); and beside the app on the Work's host: the app's folder is on
``sys.path`` there, and the path is kept relative to the file that made the component.
"""

from __future__ import annotations

import os
import sys
from typing import Any


def split_args(script_args: list[Any] | str | None) -> list[str]:
    """``script_args`` as a list: a string is split on spaces, as Lightning App does."""
    if script_args is None or script_args == "":
        return []
    if isinstance(script_args, str):
        return [a for a in script_args.split(" ") if a]
    if not isinstance(script_args, list | tuple):
        raise TypeError(f"script_args must be a list or a string, got {type(script_args).__name__}")
    return [str(a) for a in script_args]


def param_arg(key: str, value: Any) -> str:
    """One ``run(params=...)`` entry as a command-line argument: ``--key=value`` (a key that starts
    with ``-`` is kept as it is, as Lightning App's ``key=value``)."""
    return f"{key}={value}" if key.startswith("-") else f"--{key}={value}"


def caller_file() -> str:
    """The file of the first frame outside lightning_kernel: the app (or module) making the component."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    frame = sys._getframe(1)
    while frame is not None:
        name = frame.f_code.co_filename
        if not os.path.abspath(name).startswith(here + os.sep):
            return name
        frame = frame.f_back  # type: ignore[assignment]
    return ""


class ScriptLocation:
    """Where a script was when its component was made, to find it again on the Work's host."""

    def __init__(self, script_path: str) -> None:
        self.given = script_path
        self.made_at = os.path.abspath(script_path)
        self.beside_app = ""
        maker = caller_file()
        if maker and not os.path.isabs(script_path):
            app_dir = os.path.dirname(os.path.abspath(maker))
            if not os.path.exists(self.made_at):
                # Not in the current folder: beside the app file (a worker re-importing the app
                # makes its components in the Work's folder).
                self.made_at = os.path.join(app_dir, script_path)
            rel = os.path.relpath(self.made_at, app_dir)
            if not rel.startswith(os.pardir):
                self.beside_app = rel

    def exists(self) -> bool:
        return any(os.path.isfile(p) for p in self.candidates())

    def candidates(self) -> list[str]:
        if os.path.isabs(self.given):
            return [self.given]
        out = [os.path.abspath(self.given), self.made_at]
        if self.beside_app:
            out += [os.path.join(d, self.beside_app) for d in sys.path if d and os.path.isabs(d)]
        return out

    def find(self, work: str) -> str:
        """The script's path on this host; ``FileNotFoundError`` naming the places looked at."""
        looked = self.candidates()
        for path in looked:
            if os.path.isfile(path):
                return path
        shown = ", ".join(dict.fromkeys(looked[:3]))
        raise FileNotFoundError(f"{work}: the script {self.given!r} was not found (looked at {shown})")
