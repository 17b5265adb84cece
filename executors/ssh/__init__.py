"""The ``ssh`` executor: Works on the user's own machines, over SSH (asyncssh: ``pip install
'lightning-kernel[ssh]'``). Configured by ``[executors.ssh]`` in ``lightning-kernel.toml``; see
``_config`` for the settings and ``_executor`` for how a worker is started, watched and re-attached.

Importing this module is light (asyncssh is imported when a host is first reached).
"""

from __future__ import annotations

from typing import Any

from lightning_kernel.errors import ExecutorError
from lightning_kernel.executors import Executor, WorkerHandle, WorkerSpec, hookimpl

from ._config import HostConfig, SshConfig, parse


class _NoHosts(Executor):
    """The ``ssh`` executor of a config without hosts: says so when a Work asks for it (and keeps the
    kernel's start from importing the executor for nothing)."""

    name = "ssh"

    async def start(self, spec: WorkerSpec) -> WorkerHandle:
        raise ExecutorError(
            "the ssh executor has no hosts: add [[executors.ssh.hosts]] tables to lightning-kernel.toml "
            "(in the working directory, or --config FILE / LK_CONFIG)"
        )


@hookimpl
def lk_executors(config: dict[str, Any]) -> list[Executor]:
    parsed = parse(config)
    if not parsed.hosts:
        return [_NoHosts()]
    from ._executor import SshExecutor

    return [SshExecutor(parsed)]


__all__ = ["HostConfig", "SshConfig", "lk_executors", "parse"]
