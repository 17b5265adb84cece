"""The hooks an executor plugin implements. Functions here are specifications: docstrings only."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from ._base import Executor

hookspec = pluggy.HookspecMarker("lightning_kernel")
hookimpl = pluggy.HookimplMarker("lightning_kernel")


@hookspec
def lk_executors() -> list[Executor]:  # type: ignore[empty-body]
    """Return the executors this plugin provides, each with a unique ``name``.

    Called once when the kernel starts. The kernel picks an executor for each Work by name:
    the Work's ``CloudCompute(executor=...)``, else the kernel's ``--executor`` (``local``).
    """
