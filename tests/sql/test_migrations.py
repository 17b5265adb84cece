"""The Alembic migrations build the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from lightning_kernel import _schema as schema
from lightning_kernel._sql import SqlEventStore, alembic_config, open_store, upgrade
from lightning_kernel.errors import ServiceUnreachable

TABLES = {"alembic_version", "events", "logs", "meta", "runs", "snapshots"}


def _tables(url: str) -> set[str]:
    store = SqlEventStore(url)  # not open_store: that would migrate
    try:
        with store.engine.connect() as conn:
            return set(sa.inspect(conn).get_table_names())
    finally:
        store.close()


def test_head_revision_constant_is_alembics_head() -> None:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert heads == [schema.HEAD_REVISION]


@pytest.mark.parametrize("how", ["alembic", "open_store"])
def test_upgrade_from_empty_builds_the_models(store_url: str, how: str) -> None:
    """Alembic's migrations build exactly the models; a first open (tables from the models, stamped
    at head) leaves the database as the migrations would."""
    assert _tables(store_url) == set()
    store = SqlEventStore(store_url)
    try:
        if how == "alembic":
            with store.engine.begin() as conn:
                command.upgrade(alembic_config(conn), "head")
        else:
            upgrade(store_url)
        assert _tables(store_url) == TABLES
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all() == [
                schema.HEAD_REVISION
            ]
            ctx = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True}
            )
            assert compare_metadata(ctx, schema.metadata) == []
    finally:
        store.close()


def test_downgrade_to_base_and_up_again(store_url: str) -> None:
    store = open_store(store_url)
    try:
        with store.engine.begin() as conn:
            command.downgrade(alembic_config(conn), "base")
        assert _tables(store_url) == {"alembic_version"}
        assert store.revision() is None
        store.upgrade()
        assert store.revision() == schema.HEAD_REVISION
        assert _tables(store_url) == TABLES
    finally:
        store.close()


def test_concurrent_first_opens_migrate_once(store_url: str) -> None:
    errors: list[BaseException] = []
    stores: list[SqlEventStore] = []

    def opener() -> None:
        try:
            stores.append(open_store(store_url))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=opener) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in stores:
        s.close()
    assert errors == []
    assert len(stores) == 4
    assert _tables(store_url) == TABLES


@pytest.mark.parametrize("first", [True, False], ids=["empty database", "current schema"])
def test_opening_does_not_import_alembic(store_url: str, first: bool) -> None:
    if not first:
        upgrade(store_url)
    code = (
        "import sys; from lightning_kernel._sql import open_store; "
        f"open_store({store_url!r}).close(); print(sorted(m for m in sys.modules if m.startswith('alembic')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_opening_an_empty_database_migrates_it(store_url: str) -> None:
    store = open_store(store_url)
    try:
        assert store.revision() == schema.HEAD_REVISION
        assert store.max_seq() == 0
    finally:
        store.close()


def test_schema_from_a_newer_release_is_refused_clearly(store_url: str) -> None:
    upgrade(store_url)
    store = SqlEventStore(store_url)
    try:
        with store.engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999_future'"))
    finally:
        store.close()
    with pytest.raises(ServiceUnreachable) as info:
        open_store(store_url)
    assert "'9999_future'" in info.value.reason
    assert "a newer lightning-kernel wrote it" in info.value.reason


def test_a_database_at_0001_with_runs_upgrades_keeping_them(store_url: str) -> None:
    """A database written by a kernel from before the meta table keeps every row; the recorder then
    counts its newest event as its position (``_binding``)."""
    from lightning_kernel._records import EventRecord, RunInfo

    store = open_store(store_url)
    try:
        with store.engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0001_initial")
        assert "meta" not in _tables(store_url)
        events = [
            EventRecord(
                seq=s,
                id=f"e{s}",
                run_id="r1",
                type="run.created" if s == 1 else "x",
                version=1,
                ts=1.0,
                source="k",
                body={},
            )
            for s in range(1, 6)
        ]
        with store.engine.begin() as conn:  # as a kernel of then wrote them: its columns only
            cols = "seq, id, run_id, type, version, ts, source, body"
            for e in events:
                conn.execute(
                    sa.text(f"INSERT INTO events ({cols}) VALUES (:s, :i, :r, :t, :v, :ts, :src, '{{}}')"),
                    {
                        "s": e.seq,
                        "i": e.id,
                        "r": e.run_id,
                        "t": e.type,
                        "v": e.version,
                        "ts": e.ts,
                        "src": e.source,
                    },
                )
            conn.execute(
                sa.text(
                    "INSERT INTO runs (id, name, app_file, status, created_at, updated_at, message, last_seq)"
                    " VALUES ('r1', 'old', 'a.py', 'succeeded', 1.0, 2.0, '', 5)"
                )
            )
        store.upgrade()
        assert store.revision() == schema.HEAD_REVISION
        assert [(e.seq, e.input_seq) for e in store.events("r1")] == [(s, 0) for s in range(1, 6)]
        assert store.run("r1") == RunInfo("r1", "old", "a.py", "succeeded", 1.0, 2.0, "", 5, events=5)
        assert store.meta() == {} and store.max_seq() == 5
    finally:
        store.close()
