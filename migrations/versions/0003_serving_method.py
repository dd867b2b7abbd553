"""model versions record what they were trained through and which method serves; forecasts say
which method produced them

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ALTER TABLE, no batch mode: SQLite (>= 3.35) adds and drops these columns in place, and a
# batch copy of model_versions would fail its foreign keys (predictions reference it).


def upgrade() -> None:
    # Rows written before this migration were all served by the network.
    op.add_column("model_versions", sa.Column("trained_through", sa.Date(), nullable=True))
    for table in ("model_versions", "predictions"):
        op.add_column(
            table, sa.Column("method", sa.String(length=16), nullable=False, server_default="lstm")
        )
        op.add_column(table, sa.Column("method_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    for table in ("predictions", "model_versions"):
        op.drop_column(table, "method_reason")
        op.drop_column(table, "method")
    op.drop_column("model_versions", "trained_through")
