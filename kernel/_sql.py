"""``SqlEventStore``: the ``EventStore`` on SQLAlchemy 2 Core, for SQLite (WAL) and PostgreSQL.

One Engine per store, a short connection per call, so the kernel's thread pool can share a store.
SQLite writers take the write lock up front (``BEGIN IMMEDIATE``) so concurrent writers queue on
the busy timeout instead of failing a lock upgrade half-way through a transaction.

The write path is where the time goes (the recorder commits batches of up to ~1000 events). Each
dialect writes a batch in its fastest idempotent form; see ``_sql_write`` for the figures that
chose them. Start-up is cheap: the ``alembic_version`` row is compared with ``HEAD_REVISION`` with
plain SQLAlchemy and alembic is imported only when the schema is behind; an empty database gets
the models' tables stamped at ``HEAD_REVISION`` without it.

Reads go by the index on ``events(run_id, seq)`` and the snapshots' key ``(run_id, seq)`` (SQLite's
query plans: ``SEARCH ... USING INDEX``): in a run of 1,000,000 events, a ``history`` page (100
events after N, wherever N is) takes 0.9 ms on SQLite and 1.3 ms on PostgreSQL, the newest snapshot
and the 499 events after it 3-4 and 5-6 ms (``python bench/replay.py``, this 2-core machine).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url

from . import _schema as schema
from ._records import Batch, EventRecord, LogLine, RunInfo, Snapshot
from ._sql_engine import check_sqlite_exists, create_engine, one_line
from ._sql_write import write_batch
from .errors import RunNotFound, ServiceUnreachable, StoreError

if TYPE_CHECKING:
    from alembic.config import Config

    from ._store import EventStore

_MIGRATION_LOCK = 0x6C6B5F6D  # "lk_m": serialises concurrent upgrades of one PostgreSQL database

__all__ = ["SqlEventStore", "alembic_config", "default_sqlite_url", "mask_url", "open_store", "upgrade"]


def default_sqlite_url(data_dir: str) -> str:
    """The SQLite database inside a data dir."""
    return f"sqlite:///{os.path.join(os.path.abspath(data_dir), 'kernel.db')}"


def open_store(url: str, create: bool = True) -> SqlEventStore:
    """A store on ``url`` with its schema at the newest migration.

    ``create=False`` is for the read-only commands: a SQLite file that does not exist is an error
    (a mistyped path must not leave a new, empty database behind that then says "no runs yet").
    """
    if not create:
        check_sqlite_exists(url)
    store = SqlEventStore(url)
    try:
        store.upgrade()
    except BaseException:
        store.close()
        raise
    return store


def upgrade(url: str) -> None:
    """Bring the schema at ``url`` to the newest migration."""
    open_store(url).close()


def mask_url(url: str) -> str:
    """``url`` with its password hidden, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


class SqlEventStore:
    """Runs, events, snapshots and logs in SQLite or PostgreSQL (see ``EventStore``)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._shown = mask_url(url)
        self._engine, self._memory = create_engine(url, self._shown)
        self.dialect = self._engine.dialect.name
        # Raised by the driver's own cursor (PostgreSQL's COPY), which SQLAlchemy does not wrap.
        self._driver_error: type[Exception] = self._engine.dialect.loaded_dbapi.Error
        # An in-memory SQLite database is one shared connection: calls take turns on it.
        self._lock: threading.RLock | None = threading.RLock() if self._memory else None

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy Engine (for migrations and tests; the kernel uses the methods)."""
        return self._engine

    # -- connections --------------------------------------------------------------------------------

    @contextmanager
    def _connect(self, write: bool = False) -> Iterator[Connection]:
        lock = self._lock
        if lock is not None:
            lock.acquire()
        try:
            try:
                conn = self._engine.connect()
            except sa.exc.DBAPIError as exc:
                raise ServiceUnreachable("database", self._shown, one_line(exc)) from exc
            try:
                if write:
                    conn.execution_options(lk_write=True)
                yield conn
            except sa.exc.DBAPIError as exc:
                if exc.connection_invalidated:
                    raise ServiceUnreachable("database", self._shown, one_line(exc)) from exc
                raise StoreError(f"database at {self._shown}: {one_line(exc)}") from exc
            except self._driver_error as exc:
                raise StoreError(f"database at {self._shown}: {one_line(exc)}") from exc
            finally:
                conn.close()
        finally:
            if lock is not None:
                lock.release()

    # -- schema -------------------------------------------------------------------------------------

    def revision(self) -> str | None:
        """The schema's migration id, None for an empty database."""
        with self._connect() as conn:
            return _revision(conn)

    def upgrade(self) -> None:
        with self._connect() as conn:
            if _revision(conn) == schema.HEAD_REVISION:
                return
        try:
            with self._connect(write=True) as conn, conn.begin():
                if self.dialect == "postgresql":
                    conn.exec_driver_sql("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                if _revision(conn) == schema.HEAD_REVISION:
                    return  # another process upgraded it while we waited for the lock
                _run_migrations(conn)
        except StoreError as exc:  # reachable, but not usable: no schema to create in, no rights
            reason = str(exc).removeprefix(f"database at {self._shown}: ")
            raise ServiceUnreachable("database", self._shown, f"cannot migrate its schema: {reason}") from exc

    # -- writes -------------------------------------------------------------------------------------

    def write(self, batch: Batch) -> None:
        if not (batch.events or batch.runs or batch.snapshots or batch.logs or batch.meta or batch.fence):
            return
        with self._connect(write=True) as conn, conn.begin():
            write_batch(conn, batch)

    # -- reads --------------------------------------------------------------------------------------

    def events(
        self,
        run_id: str,
        after_seq: int = 0,
        upto_seq: int | None = None,
        limit: int | None = None,
        types: Sequence[str] | None = None,
    ) -> list[EventRecord]:
        t = schema.events
        q = sa.select(
            t.c.seq, t.c.id, t.c.run_id, t.c.type, t.c.version, t.c.ts, t.c.source, t.c.body, t.c.input_seq
        ).where(t.c.run_id == run_id, t.c.seq > after_seq)
        if upto_seq is not None:
            q = q.where(t.c.seq <= upto_seq)
        if types is not None:
            q = q.where(t.c.type.in_(list(types)))
        q = q.order_by(t.c.seq)
        if limit is not None:
            q = q.limit(limit)
        with self._connect() as conn:
            rows = conn.execute(q).all()
        return [EventRecord(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7]), r[8]) for r in rows]

    def meta(self) -> dict[str, str]:
        t = schema.meta
        with self._connect() as conn:
            return {k: v for k, v in conn.execute(sa.select(t.c.key, t.c.value)).all()}

    def set_meta_once(self, key: str, value: str) -> str:
        """Set ``key`` unless it is set; returns the value it holds now (the first writer's)."""
        t = schema.meta
        with self._connect(write=True) as conn, conn.begin():
            current = conn.execute(sa.select(t.c.value).where(t.c.key == key)).scalar()
            if current is not None:
                return str(current)
            conn.execute(sa.insert(t).values(key=key, value=value))
            return value

    def set_run_status(self, run_id: str, status: str, message: str) -> None:
        """Say in the runs row what the log cannot say yet (the kernel lost NATS: ``interrupted``); the
        next recorded event of the run writes the row from the log again."""
        t = schema.runs
        with self._connect(write=True) as conn, conn.begin():
            conn.execute(sa.update(t).where(t.c.id == run_id).values(status=status, message=message))

    def max_seq(self) -> int:
        with self._connect() as conn:
            value = conn.execute(sa.select(sa.func.max(schema.events.c.seq))).scalar()
        return int(value or 0)

    def max_log_seq(self) -> int:
        with self._connect() as conn:
            value = conn.execute(sa.select(sa.func.max(schema.logs.c.seq))).scalar()
        return int(value or 0)

    def runs(self, limit: int | None = None, status: Sequence[str] | None = None) -> list[RunInfo]:
        t = schema.runs
        q = sa.select(t)
        if status is not None:
            q = q.where(t.c.status.in_(list(status)))
        q = q.order_by(t.c.created_at.desc(), t.c.id.desc())
        if limit is not None:
            q = q.limit(limit)
        with self._connect() as conn:
            return [_run_info(r) for r in conn.execute(q).all()]

    def run(self, run_id: str) -> RunInfo:
        t = schema.runs
        if run_id == "latest":
            q = sa.select(t).order_by(t.c.created_at.desc(), t.c.id.desc()).limit(1)
        else:
            q = sa.select(t).where(t.c.id == run_id)
        with self._connect() as conn:
            row = conn.execute(q).first()
        if row is None:
            raise RunNotFound(run_id)
        return _run_info(row)

    def latest_snapshot(
        self, run_id: str, upto_seq: int | None = None, fold: int | None = None
    ) -> Snapshot | None:
        t = schema.snapshots
        q = sa.select(t.c.seq, t.c.state, t.c.fold).where(t.c.run_id == run_id)
        if fold is not None:
            q = q.where(t.c.fold == fold)
        if upto_seq is not None:
            q = q.where(t.c.seq <= upto_seq)
        q = q.order_by(t.c.seq.desc()).limit(1)
        with self._connect() as conn:
            row = conn.execute(q).first()
        return None if row is None else Snapshot(run_id, row[0], json.loads(row[1]), row[2])

    def logs(
        self, run_id: str, component: str | None = None, after_seq: int = 0, limit: int | None = None
    ) -> list[LogLine]:
        t = schema.logs
        q = sa.select(t.c.seq, t.c.run_id, t.c.component, t.c.ts, t.c.stream, t.c.line).where(
            t.c.run_id == run_id, t.c.seq > after_seq
        )
        if component is not None:
            q = q.where(t.c.component == component)
        q = q.order_by(t.c.seq)
        if limit is not None:
            q = q.limit(limit)
        with self._connect() as conn:
            return [LogLine(*r) for r in conn.execute(q).all()]

    def close(self) -> None:
        self._engine.dispose()

    def __repr__(self) -> str:
        return f"SqlEventStore({self._shown!r})"


def _run_info(row: Any) -> RunInfo:
    m = row._mapping
    return RunInfo(
        id=m["id"],
        name=m["name"],
        app_file=m["app_file"],
        status=m["status"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        message=m["message"],
        last_seq=m["last_seq"],
        events=m["events"],
    )


def _revision(conn: Connection) -> str | None:
    if not sa.inspect(conn).has_table("alembic_version"):
        return None
    value = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    return None if value is None else str(value)


def alembic_config(conn: Connection | None = None) -> Config:
    """An alembic ``Config`` for the shipped migrations, built in code (no alembic.ini)."""
    # Imported here: alembic costs ~100 ms to import and is needed only when the schema is behind.
    import lightning_kernel.migrations as migrations
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", os.path.dirname(os.path.abspath(migrations.__file__)))
    if conn is not None:
        config.attributes["connection"] = conn
    return config


def _run_migrations(conn: Connection) -> None:
    if _revision(conn) is None and not set(sa.inspect(conn).get_table_names()) & set(schema.metadata.tables):
        _create_at_head(conn)
        return
    from alembic import command
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    config = alembic_config(conn)
    current = _revision(conn)
    if current is not None:
        try:
            ScriptDirectory.from_config(config).get_revision(current)
        except CommandError as exc:
            raise StoreError(
                f"its schema is at revision {current!r}, which this lightning-kernel does not know "
                f"(its newest is {schema.HEAD_REVISION!r}): a newer lightning-kernel wrote it; upgrade"
            ) from exc
    command.upgrade(config, "head")


def _create_at_head(conn: Connection) -> None:
    """An empty database gets the models' tables and is stamped at the newest migration, as alembic
    would leave it (a test holds the migrations to the models): a first start need not import
    alembic and replay every migration."""
    schema.metadata.create_all(conn)
    if not sa.inspect(conn).has_table("alembic_version"):  # it stays, empty, after a downgrade to base
        conn.exec_driver_sql(
            "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
            "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
        )
    conn.exec_driver_sql(f"INSERT INTO alembic_version (version_num) VALUES ('{schema.HEAD_REVISION}')")


if TYPE_CHECKING:

    def _is_an_event_store(store: SqlEventStore) -> EventStore:
        return store  # mypy checks SqlEventStore against the EventStore protocol here
