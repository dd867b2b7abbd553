"""pipeline step detail and inserted-row count; index for newest-first run listing

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("job_steps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rows_inserted", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("detail", sa.Text(), nullable=True))
    with op.batch_alter_table("job_runs", schema=None) as batch_op:
        batch_op.create_index("ix_job_runs_started_at", ["started_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("job_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_job_runs_started_at")
    with op.batch_alter_table("job_steps", schema=None) as batch_op:
        batch_op.drop_column("detail")
        batch_op.drop_column("rows_inserted")
