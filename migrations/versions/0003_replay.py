"""What replay needs: each event's ``input_seq`` (the state a flow iteration ran on) and each
snapshot's ``fold`` version (a snapshot of another fold is not loaded).

Revision ID: 0003_replay
Revises: 0002_meta
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_replay"
down_revision: str | None = "0002_meta"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("input_seq", sa.BigInteger(), nullable=False, server_default="0"))
    with op.batch_alter_table("snapshots") as batch:
        batch.add_column(sa.Column("fold", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("snapshots") as batch:
        batch.drop_column("fold")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("input_seq")
