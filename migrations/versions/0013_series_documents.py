"""series documents: each ticker's whole chart series, rendered when its data changes

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03

A ticker's document appears with the next write of its prices, forecasts, backtest record,
actions or suspect flag (the next night); until then the API renders its series per request.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "series_documents",
        sa.Column("ticker_id", sa.Integer(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticker_id"],
            ["tickers.id"],
            name="fk_series_documents_ticker_id_tickers",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("ticker_id", name="pk_series_documents"),
    )


def downgrade() -> None:
    op.drop_table("series_documents")
