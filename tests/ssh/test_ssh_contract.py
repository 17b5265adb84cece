"""The SSH executor passes the executor contract, with a real sshd and a test user that shares
nothing with the kernel (its own HOME and Python; the kernel's folders are not readable to it)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from lightning_kernel.executors import WorkerSpec
from lightning_kernel.testing import ExecutorContract

pytestmark = pytest.mark.slow


class TestSshExecutor(ExecutorContract):
    timeout = 60.0

    @pytest.fixture
    def executor(self, ssh_host: Any) -> Any:
        from lightning_kernel.executors.ssh import parse
        from lightning_kernel.executors.ssh._executor import SshExecutor

        return SshExecutor(parse({"hosts": [ssh_host.config()]}))

    def adapt_spec(self, spec: WorkerSpec) -> WorkerSpec:
        # The harness points a local worker's HOME and code cache into its own folder; a worker on a
        # host has the host's (which the kernel's folder is not).
        env = {k: v for k, v in spec.env.items() if k not in ("HOME", "LK_CODE_CACHE")}
        return dataclasses.replace(spec, env=env)
