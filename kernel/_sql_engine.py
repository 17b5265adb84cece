"""SQLAlchemy engines for the store: SQLite in WAL mode with writers that take the lock up front, and
PostgreSQL through psycopg 3 with a pre-ping (a long-running kernel outlives server restarts)."""

from __future__ import annotations

import os
import sqlite3
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.pool import StaticPool

from .errors import ConfigError, ServiceUnreachable

SQLITE_BUSY_TIMEOUT_S = 30.0
PG_CONNECT_TIMEOUT_S = 10


def one_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    # PostgreSQL appends the statement and a caret ("LINE 2: CREATE ...", "^"): noise in one line.
    parts = [p.strip() for p in str(orig).splitlines()]
    text = " ".join(p for p in parts if p and p != "^" and not p.startswith("LINE "))
    return text or type(orig).__name__


def check_sqlite_exists(url: str) -> None:
    try:
        u = make_url(url)
    except Exception:
        return  # create_engine says what is wrong with it
    path = u.database or ""
    if u.get_backend_name() != "sqlite" or path in ("", ":memory:") or path.startswith("file:"):
        return
    if not os.path.isfile(path):
        raise ConfigError(
            f"no database at {os.path.abspath(path)} (--db / --data-dir, LK_DB / LK_DATA_DIR): check the "
            "path; a run started with `lightning-kernel run app` in that data dir creates it"
        )


def create_engine(url: str, shown: str) -> tuple[Engine, bool]:
    try:
        u = make_url(url)
    except Exception as exc:
        raise ServiceUnreachable(
            "database", shown, f"not a database URL ({exc}); use sqlite:///PATH or postgresql+psycopg://..."
        ) from exc
    backend = u.get_backend_name()
    try:
        if backend == "sqlite":
            return _sqlite_engine(u, shown)
        if backend == "postgresql":
            return _postgres_engine(u), False
    except ServiceUnreachable:
        raise
    except ImportError as exc:  # the driver is not installed: nothing was tried to reach
        install = (
            "pip install 'lightning-kernel[postgres]' (or pip install 'psycopg[binary]')"
            if backend == "postgresql"
            else "install its driver"
        )
        driver = "psycopg" if u.drivername == "postgresql" else u.get_driver_name()
        raise ConfigError(
            f"database {shown} needs the {driver} driver, which is not installed ({exc}): {install}"
        ) from exc
    except Exception as exc:  # a bad query argument
        raise ServiceUnreachable("database", shown, one_line(exc)) from exc
    raise ServiceUnreachable(
        "database", shown, f"unsupported database {backend!r}; use sqlite:///PATH or postgresql+psycopg://..."
    )


def _sqlite_engine(u: URL, shown: str) -> tuple[Engine, bool]:
    path = u.database or ""
    memory = path in ("", ":memory:") or "mode=memory" in path
    if memory:
        engine = sa.create_engine(u, poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        parent = os.path.dirname(os.path.abspath(path))
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as exc:
            raise ServiceUnreachable("database", shown, f"cannot create folder {parent}: {exc}") from exc
        engine = sa.create_engine(u, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # pysqlite's own transaction handling would BEGIN lazily (deferred); we issue BEGIN ourselves.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        if not memory:
            # Switching a new file to WAL needs it alone for a moment; SQLite may answer "locked"
            # at once (deadlock avoidance skips the busy handler) when several open it together.
            for attempt in range(200):
                try:
                    cur.execute("PRAGMA journal_mode=WAL")
                    break
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) or attempt == 199:
                        raise
                    time.sleep(0.05)
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("lk_write") else "BEGIN")

    return engine, memory


def _postgres_engine(u: URL) -> Engine:
    if u.drivername == "postgresql":
        u = u.set(drivername="postgresql+psycopg")  # psycopg 3 is the driver we ship with the extra
    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in u.query:
        connect_args["connect_timeout"] = PG_CONNECT_TIMEOUT_S
    if "application_name" not in u.query:
        # pg_stat_activity then says which kernel holds a session (and a lock).
        connect_args["application_name"] = f"lightning-kernel pid {os.getpid()}"
    # A long-running kernel outlives server restarts: a pooled connection is checked before use
    # (one cheap round trip per call) rather than failing the next batch.
    return sa.create_engine(u, connect_args=connect_args, pool_pre_ping=True)
