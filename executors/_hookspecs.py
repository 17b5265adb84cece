"""The hooks an executor plugin implements. Functions here are specifications: docstrings only."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from ._base import Executor

hookspec = pluggy.HookspecMarker("lightning_kernel")
hookimpl = pluggy.HookimplMarker("lightning_kernel")


@hookspec
def lk_executors(config: dict[str, Any]) -> list[Executor]:  # type: ignore[empty-body]
    """Return the executors this plugin provides, each with a unique ``name``.

    Called once when the kernel starts. ``config`` is the plugin's own table of
    ``lightning-kernel.toml``, ``[executors.<entry point name>]`` (empty when there is none), with
    ``data_dir`` set to the kernel's data dir for files the executor keeps on the kernel's machine.
    An implementation may also take no argument. The kernel picks an executor for each Work by
    name: the Work's ``CloudCompute(executor=...)``, else the kernel's ``--executor`` (``local``).
    """
