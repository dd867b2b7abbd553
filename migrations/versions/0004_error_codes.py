"""error codes on run and step records: the public face of a failure (the full text stays for
operators)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table in ("job_runs", "job_steps"):
        op.add_column(table, sa.Column("error_code", sa.String(length=40), nullable=True))
    # Failures recorded before codes existed: shown as a generic failure.
    op.execute("UPDATE job_steps SET error_code = 'internal_error' WHERE error IS NOT NULL")
    op.execute("UPDATE job_runs SET error_code = 'internal_error' WHERE error IS NOT NULL")


def downgrade() -> None:
    for table in ("job_steps", "job_runs"):
        op.drop_column(table, "error_code")
