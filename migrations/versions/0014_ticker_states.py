"""ticker states: what the dashboard filters, sorts and counts by, kept on write

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03

Filled here for every ticker with the statement forecaster.storage.dashboard computes; from
then on, each transaction that writes a ticker's prices, forecasts or model versions keeps it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The newest forecast (its method, change and version's MAE ratio), else the champion's method
# and ratio; the newest stored close.
FILL = """
INSERT INTO ticker_states (ticker_id, last_date, as_of, method, change, mae_ratio)
SELECT t.id,
       (SELECT p.date FROM prices p WHERE p.ticker_id = t.id ORDER BY p.date DESC LIMIT 1),
       f.as_of_date,
       COALESCE(f.method, c.method),
       CASE WHEN f.last_close <> 0 THEN f.predicted_close / f.last_close - 1 END,
       CASE WHEN f.method IS NOT NULL THEN v.mae_ratio ELSE c.mae_ratio END
FROM tickers t
LEFT JOIN predictions f ON f.id = (
    SELECT n.id FROM predictions n WHERE n.ticker_id = t.id ORDER BY n.as_of_date DESC LIMIT 1
)
LEFT JOIN model_versions v ON v.id = f.model_version_id
LEFT JOIN model_versions c ON c.ticker_id = t.id AND c.status = 'champion'
"""


def upgrade() -> None:
    op.create_table(
        "ticker_states",
        sa.Column("ticker_id", sa.Integer(), nullable=False),
        sa.Column("last_date", sa.Date(), nullable=True),
        sa.Column("as_of", sa.Date(), nullable=True),
        sa.Column("method", sa.String(length=16), nullable=True),
        sa.Column("change", sa.Double(), nullable=True),
        sa.Column("mae_ratio", sa.Double(), nullable=True),
        sa.ForeignKeyConstraint(
            ["ticker_id"],
            ["tickers.id"],
            name="fk_ticker_states_ticker_id_tickers",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("ticker_id", name="pk_ticker_states"),
    )
    op.execute(FILL)


def downgrade() -> None:
    op.drop_table("ticker_states")
