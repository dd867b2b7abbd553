"""the tracked universe lives in the database: tickers.tracked, and indexes for listing tickers
and finding each ticker's last pipeline step

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ALTER TABLE, no batch mode (as in 0003): a batch copy of `tickers` would trip the foreign
# keys of every table that references it. `tickers.provider` already exists (NOT NULL, the
# provider a ticker was registered or last backfilled with), so it is reused as is.


def upgrade() -> None:
    # Every ticker stored before this migration stays tracked: the pipeline kept it fresh (it was
    # in STOCKCAST_TICKERS) or an operator backfilled it on purpose. `stockcast tickers remove`
    # stops tracking the ones that should not be.
    op.add_column(
        "tickers",
        sa.Column("tracked", sa.Boolean(), nullable=False, server_default=sa.true()),
    )
    op.create_index("ix_tickers_tracked_symbol", "tickers", ["tracked", "symbol"])
    op.create_index("ix_job_steps_ticker_id", "job_steps", ["ticker", "id"])


def downgrade() -> None:
    op.drop_index("ix_job_steps_ticker_id", table_name="job_steps")
    op.drop_index("ix_tickers_tracked_symbol", table_name="tickers")
    op.drop_column("tickers", "tracked")
