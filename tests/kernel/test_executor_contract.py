"""The built-in local executor passes the contract every executor plugin runs."""

from __future__ import annotations

import pytest
from lightning_kernel.executors.local import LocalExecutor
from lightning_kernel.testing import ExecutorContract


class TestLocalExecutor(ExecutorContract):
    timeout = 30.0

    @pytest.fixture
    def executor(self) -> LocalExecutor:
        return LocalExecutor()


class _Brutal(LocalExecutor):
    """Kills where it should ask: the contract must catch it."""

    name = "brutal"

    async def start(self, spec):  # type: ignore[no-untyped-def]
        handle = await super().start(spec)

        async def terminate(grace: float = 5.0) -> None:
            handle.kill()
            await handle.wait()

        handle.terminate = terminate  # type: ignore[method-assign]
        return handle


def test_the_contract_catches_an_executor_that_kills_instead_of_stopping() -> None:
    contract = ExecutorContract()
    contract.timeout = 5.0
    with pytest.raises((AssertionError, pytest.fail.Exception), match=r"clean|stopped"):
        contract.test_terminate_stops_a_running_call_gracefully(_Brutal())
