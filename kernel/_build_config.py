"""``BuildConfig``: how a Work's environment is built, as Lightning App's (``lightning.app.BuildConfig``).

Lightning App used it in its cloud: ``requirements`` installed, ``build_commands()`` run, or a container
``image``/``dockerfile`` used, before a Work started. Here it is accepted and kept with the Work
(``work.cloud_build_config``, ``work.local_build_config``) so apps that set it run unchanged; no executor
installs or builds anything from it: a Work runs in the environment its executor gives it (the local
Python, the SSH host's ``python``, the Ray cluster's ``runtime_env``), as Lightning App ran Works locally.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any


def requirements_in(path: str) -> list[str]:
    """The requirements listed in the file ``path`` (comments, blanks and URLs skipped), [] if none."""
    if not os.path.isfile(path):
        return []
    found = []
    with open(path) as f:
        for line in f:
            req = line.split("#", 1)[0].strip()
            if req and not req.startswith(("http", "-")) and "@http" not in req:
                found.append(req)
    return found


@dataclass
class BuildConfig:
    """``requirements``: packages (or requirement files); when empty, the ``requirements.txt`` beside the
    Work's file, as Lightning App read it. ``dockerfile``, ``image``: the container to build or run.
    Override ``build_commands()`` for shell commands to run before the requirements install."""

    requirements: list[str] = field(default_factory=list)
    dockerfile: str | None = None
    image: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.requirements, str) or not all(isinstance(r, str) for r in self.requirements):
            raise TypeError(
                f"BuildConfig(requirements=...) must be a list of strings, got {self.requirements!r}"
            )
        self.requirements = list(self.requirements)

    def build_commands(self) -> list[str]:
        """Override: shell commands to run before the requirements are installed."""
        return []

    def on_work_init(self, work: Any, cloud_compute: Any = None) -> None:
        """Fill ``requirements`` from the ``requirements.txt`` beside the Work's file when none were given."""
        if self.requirements:
            return
        import inspect

        try:
            folder = os.path.dirname(inspect.getfile(type(work)))
        except (TypeError, OSError):
            return
        self.requirements = requirements_in(os.path.join(folder, "requirements.txt"))


__all__ = ["BuildConfig"]
