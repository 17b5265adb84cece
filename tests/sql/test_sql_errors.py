"""A database that cannot be reached or used is one clear ``ServiceUnreachable`` line."""

from __future__ import annotations

from pathlib import Path

import pytest
from lightning_kernel._sql import open_store, upgrade
from lightning_kernel.errors import ConfigError, ServiceUnreachable


def _unreachable(url: str) -> ServiceUnreachable:
    with pytest.raises(ServiceUnreachable) as info:
        open_store(url)
    err = info.value
    assert err.service == "database"
    assert "\n" not in str(err)
    assert isinstance(err, ConfigError)
    return err


def test_postgres_port_with_nothing_listening_masks_the_password() -> None:
    err = _unreachable("postgresql+psycopg://lk:s3cret-pw@127.0.0.1:1/test")
    assert "s3cret-pw" not in str(err)
    assert "lk:***@127.0.0.1:1/test" in str(err)
    assert "127.0.0.1" in err.reason or "refused" in err.reason.lower()


def test_postgres_database_that_does_not_exist(pg_server: str) -> None:
    url = pg_server.rsplit("/", 1)[0] + "/lk_no_such_database"
    err = _unreachable(url)
    assert "lk_no_such_database" in err.reason
    assert "does not exist" in err.reason


def test_plain_postgresql_scheme_uses_psycopg(pg_url: str) -> None:
    store = open_store(pg_url.replace("postgresql+psycopg://", "postgresql://", 1))
    try:
        assert store.dialect == "postgresql"
        assert store.max_seq() == 0
    finally:
        store.close()


def test_sqlite_folder_that_cannot_be_created(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    err = _unreachable(f"sqlite:///{tmp_path}/a-file/sub/kernel.db")
    assert "cannot create folder" in err.reason
    assert "a-file" in err.reason


def test_sqlite_file_that_is_not_a_database(tmp_path: Path) -> None:
    bad = tmp_path / "kernel.db"
    bad.write_bytes(b"this is certainly not a SQLite database, just some bytes" * 100)
    err = _unreachable(f"sqlite:///{bad}")
    assert "not a database" in err.reason


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mysql://root@localhost/db", "unsupported database 'mysql'"),
        ("not a url at all", "not a database URL"),
        ("postgresql+nosuchdriver://localhost/test", "nosuchdriver"),
    ],
)
def test_urls_that_cannot_be_used(url: str, expected: str) -> None:
    err = _unreachable(url)
    assert expected in err.reason


def test_upgrade_reports_the_same_error() -> None:
    with pytest.raises(ServiceUnreachable, match="cannot reach database at postgresql"):
        upgrade("postgresql+psycopg://127.0.0.1:1/test")


def test_postgres_search_path_with_no_schema_to_create_in(pg_server: str) -> None:
    err = _unreachable(f"{pg_server}?options=-csearch_path%3Dlk_no_such_schema")
    assert "cannot migrate its schema" in err.reason
    assert "no schema has been selected" in err.reason
