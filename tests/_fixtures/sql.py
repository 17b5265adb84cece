"""Database fixtures: a fresh SQLite file per test, a fresh PostgreSQL schema per test.

PostgreSQL is the server on 127.0.0.1:5432 (trust auth, database ``test``; ``LK_TEST_PG_URL``
overrides it). Each test gets its own schema ``lk_<random>``, selected through the connection's
``search_path`` option in the URL, and dropped afterwards, so tests never see each other's rows.

Use ``store_url`` for a test that must pass on both databases.
"""

from __future__ import annotations

import glob
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

PG_URL = os.environ.get("LK_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _libpq_dsn(url: str) -> str:
    """The SQLAlchemy URL as a libpq URL psycopg understands."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _pg_connect() -> psycopg.Connection[Any]:
    return psycopg.connect(_libpq_dsn(PG_URL), autocommit=True, connect_timeout=5)


def _start_cluster() -> str:
    versions = sorted(os.path.basename(p) for p in glob.glob("/etc/postgresql/*"))
    if not versions:
        return "no cluster in /etc/postgresql"
    proc = subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return (proc.stdout + proc.stderr).strip()


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The PostgreSQL URL, after checking the server answers (starting its cluster if needed)."""
    try:
        _pg_connect().close()
        return PG_URL
    except Exception as first:
        started = _start_cluster()
        deadline = time.monotonic() + 20
        while True:
            try:
                _pg_connect().close()
                return PG_URL
            except Exception as exc:
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"PostgreSQL at {PG_URL} is not reachable ({first}); starting the cluster said "
                        f"{started!r}; still unreachable: {exc}",
                        pytrace=False,
                    )
                time.sleep(0.3)


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh, empty schema, dropped after the test."""
    schema = f"lk_{secrets.token_hex(6)}"
    conn = _pg_connect()
    conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in pg_server else "?"
    try:
        yield f"{pg_server}{sep}options=-csearch_path%3D{schema}"
    finally:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")
        conn.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite URL of a file that does not exist yet (in a folder that does not exist yet)."""
    return f"sqlite:///{tmp_path / 'db' / 'kernel.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest) -> str:
    """Each database in turn: the test runs once on SQLite and once on PostgreSQL."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    url: str = request.getfixturevalue(name)
    return url
