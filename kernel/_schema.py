"""The SQL schema as SQLAlchemy Core tables; Alembic migrations in ``migrations/`` own its history.

The tables are the models the migrations must produce (a test compares them with alembic's
``compare_metadata``). Bodies and states are compact JSON text, not a JSON column type, so SQLite
and PostgreSQL store and return exactly the same bytes and the insert path needs no adapter.
"""

from __future__ import annotations

import sqlalchemy as sa

HEAD_REVISION = "0004_run_events"
"""The newest migration: start-up compares it with ``alembic_version`` and imports alembic only
when the database is behind. A test checks it equals alembic's head."""

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.String(), primary_key=True),
    sa.Column("name", sa.String(), nullable=False),
    sa.Column("app_file", sa.Text, nullable=False),
    sa.Column("status", sa.String(), nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    # The seq of the newest event folded into this row: an upsert never moves it backwards.
    sa.Column("last_seq", sa.BigInteger, nullable=False),
    # How many events the run has, as the fold counted them up to last_seq.
    sa.Column("events", sa.BigInteger, nullable=False, server_default="0"),
    sa.Index(None, "created_at"),
)

events = sa.Table(
    "events",
    metadata,
    # The JetStream stream sequence: global across runs, assigned before the row exists.
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("id", sa.String(), nullable=False),
    sa.Column("run_id", sa.String(), nullable=False),
    sa.Column("type", sa.String(), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("ts", sa.Double, nullable=False),
    sa.Column("source", sa.String(), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    # For a flow iteration's events: the seq of the state the iteration ran on (0: not an iteration's).
    sa.Column("input_seq", sa.BigInteger, nullable=False, server_default="0"),
    sa.UniqueConstraint("id"),
    sa.Index(None, "run_id", "seq"),
)

snapshots = sa.Table(
    "snapshots",
    metadata,
    sa.Column("run_id", sa.String(), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("state", sa.Text, nullable=False),
    # The fold version that computed the state: a snapshot of another version is not loaded.
    sa.Column("fold", sa.Integer, nullable=False, server_default="0"),
)

logs = sa.Table(
    "logs",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("run_id", sa.String(), nullable=False),
    sa.Column("component", sa.String(), nullable=False),
    sa.Column("ts", sa.Double, nullable=False),
    sa.Column("stream", sa.String(), nullable=False),
    sa.Column("line", sa.Text, nullable=False),
    sa.Index(None, "run_id", "seq"),
    sa.Index(None, "run_id", "component", "seq"),
)

meta = sa.Table(
    "meta",
    metadata,
    # Facts about the database itself: its id, the streams it records and how far (see _recorder).
    sa.Column("key", sa.String(), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
