"""``StaticWebFrontend``: a folder of static files (an ``index.html`` and what it loads) as a flow's UI."""

from __future__ import annotations

import os

from .frontend import Frontend


class StaticWebFrontend(Frontend):
    """Serves ``serve_dir`` at ``/runs/<run>/ui/<flow name>/`` on the kernel's server, ``index.html``
    for the folder itself; nothing outside the folder is ever served (no ``..``, no links out).

    A relative ``serve_dir`` is taken from the working directory, else from the folder of the file
    that defines the flow's class (where an app's UI folder usually sits)."""

    def __init__(self, serve_dir: str | os.PathLike[str]) -> None:
        super().__init__()
        self.serve_dir = os.fspath(serve_dir)


__all__ = ["StaticWebFrontend"]
