"""``SqlEventStore`` passes the ``EventStoreContract`` on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest
from lightning_kernel._sql import open_store
from lightning_kernel.testing import EventStoreContract
from lightning_kernel.testing._store import StoreFactory


class TestSqliteStore(EventStoreContract):
    @pytest.fixture
    def make_store(self, sqlite_url: str) -> StoreFactory:
        return lambda: open_store(sqlite_url)


@pytest.mark.postgres
class TestPostgresStore(EventStoreContract):
    @pytest.fixture
    def make_store(self, pg_url: str) -> StoreFactory:
        return lambda: open_store(pg_url)


def test_testing_package_exports_the_contract() -> None:
    import lightning_kernel.testing as testing

    assert "EventStoreContract" in testing.__all__
    assert testing.__all__ == sorted(testing.__all__)
    assert all(hasattr(testing, name) for name in testing.__all__)
