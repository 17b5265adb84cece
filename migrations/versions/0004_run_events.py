"""Each run's event count (``runs.events``): ``last_seq`` is a stream sequence, global across runs,
and said nothing of how many events a run has. Rows recorded before are counted from their events.

Revision ID: 0004_run_events
Revises: 0003_replay
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_run_events"
down_revision: str | None = "0003_replay"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("events", sa.BigInteger(), nullable=False, server_default="0"))
    op.execute(
        "UPDATE runs SET events = (SELECT COUNT(*) FROM events"
        " WHERE events.run_id = runs.id AND events.seq <= runs.last_seq)"
    )


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("events")
