"""the live record: every method's forecast of each night (served or not), and the backtest a
ticker's network was demoted under

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "live_forecasts",
        sa.Column("ticker_id", sa.Integer(), nullable=False),
        sa.Column("as_of_date", sa.Date(), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("target_date", sa.Date(), nullable=False),
        sa.Column("predicted_close", sa.Double(), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticker_id"],
            ["tickers.id"],
            name="fk_live_forecasts_ticker_id_tickers",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name="fk_live_forecasts_model_version_id_model_versions",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("ticker_id", "as_of_date", "method", name="pk_live_forecasts"),
    )
    # Plain ALTER TABLE as in 0005 and 0009.
    op.add_column("tickers", sa.Column("demoted_under", sa.Date(), nullable=True))


def downgrade() -> None:
    op.drop_column("tickers", "demoted_under")
    op.drop_table("live_forecasts")
