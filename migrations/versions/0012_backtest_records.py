"""the backtest record: every out-of-sample forecast of a ticker's newest full backtest

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02

Older versions' backtests kept no forecasts; a ticker's record appears with its next full
backtest (at most `STOCKCAST_BACKTEST_EVERY_DAYS` new days away, or `stockcast train TICKER`).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "backtest_records",
        sa.Column("ticker_id", sa.Integer(), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("start", sa.Date(), nullable=False),
        sa.Column("end", sa.Date(), nullable=False),
        sa.Column("n_forecasts", sa.Integer(), nullable=False),
        sa.Column("record", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticker_id"],
            ["tickers.id"],
            name="fk_backtest_records_ticker_id_tickers",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name="fk_backtest_records_model_version_id_model_versions",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("ticker_id", name="pk_backtest_records"),
    )


def downgrade() -> None:
    op.drop_table("backtest_records")
