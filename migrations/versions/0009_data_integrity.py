"""data integrity: a ticker can be suspect (an unexplained one-day move), and corporate actions
(splits, dividends) reported by the provider are stored

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ALTER TABLE as in 0005: a batch copy of `tickers` would trip the foreign keys of
    # every table that references it.
    op.add_column("tickers", sa.Column("suspect_day", sa.Date(), nullable=True))
    op.add_column("tickers", sa.Column("suspect_note", sa.Text(), nullable=True))
    op.create_table(
        "corporate_actions",
        sa.Column("ticker_id", sa.Integer(), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),  # split | dividend
        sa.Column("value", sa.Double(), nullable=False),  # split ratio (new/old), cash dividend
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticker_id"],
            ["tickers.id"],
            name="fk_corporate_actions_ticker_id_tickers",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("ticker_id", "date", "kind", name="pk_corporate_actions"),
    )


def downgrade() -> None:
    op.drop_table("corporate_actions")
    op.drop_column("tickers", "suspect_note")
    op.drop_column("tickers", "suspect_day")
