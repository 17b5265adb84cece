"""The ``ray`` executor: Works as Ray actors on any Ray cluster (``pip install 'lightning-kernel[ray]'``).
Configured by ``[executors.ray]`` in ``lightning-kernel.toml`` (``_config``); chosen for every Work by
``run app --cloud`` (Lightning App's spelling) or ``--executor ray``, per Work by
``CloudCompute(..., executor="ray")``. See ``_executor`` for placement, preemption and re-attaching.

Importing this module is light: Ray is imported when the cluster is first joined.
"""

from __future__ import annotations

from typing import Any

from lightning_kernel.executors import Executor, hookimpl

from ._config import MACHINES, Machine, RayConfig, parse, resources_for


@hookimpl
def lk_executors(config: dict[str, Any]) -> list[Executor]:
    from ._executor import RayExecutor

    table = {k: v for k, v in config.items() if k != "data_dir"}
    # A configured cluster is joined while the kernel starts; otherwise when a Work first needs it.
    return [RayExecutor(parse(table), warm=bool(table))]


__all__ = ["MACHINES", "Machine", "RayConfig", "lk_executors", "parse", "resources_for"]
