"""The ``ssh`` executor: Works on the user's own machines, over SSH (asyncssh: ``pip install
'lightning-kernel[ssh]'``). Configured by ``[executors.ssh]`` in ``lightning-kernel.toml``; see
``_config`` for the settings and ``_executor`` for how a worker is started, watched and re-attached.

Importing this module is light (asyncssh is imported when a host is first reached).
"""

from __future__ import annotations

from typing import Any

from lightning_kernel.executors import Executor, hookimpl

from ._config import HostConfig, SshConfig, parse


@hookimpl
def lk_executors(config: dict[str, Any]) -> list[Executor]:
    from ._executor import SshExecutor

    return [SshExecutor(parse(config))]


__all__ = ["HostConfig", "SshConfig", "lk_executors", "parse"]
