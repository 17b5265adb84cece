"""The Ray executor passes the executor contract on a real local Ray cluster."""

from __future__ import annotations

from typing import Any

import pytest
from lightning_kernel.testing import ExecutorContract

pytestmark = pytest.mark.slow


class TestRayExecutor(ExecutorContract):
    timeout = 60.0

    @pytest.fixture
    def executor(self, ray_cluster: Any) -> Any:
        from lightning_kernel.executors.cloud import parse
        from lightning_kernel.executors.cloud._executor import RayExecutor

        return RayExecutor(parse(ray_cluster.config()))
