"""Alembic environment of lightning-kernel, run programmatically from ``lightning_kernel._sql``.

There is no alembic.ini at runtime: ``_sql.upgrade`` builds the Config in code and hands over an
open connection in ``config.attributes["connection"]`` (already inside the transaction that holds
the migration lock), so migrations commit or roll back with it. The ``alembic`` command line also
works against a URL given as ``sqlalchemy.url``.
"""

from __future__ import annotations

from alembic import context
from lightning_kernel._schema import metadata
from sqlalchemy import Connection, create_engine


def _migrate(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def run() -> None:
    config = context.config
    connection = config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set sqlalchemy.url, or run migrations through lightning_kernel._sql.upgrade")
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            _migrate(conn)
    finally:
        engine.dispose()


run()
