"""stored forecast documents are re-rendered: the served method's coverage, interval.calibrated,
full-precision p-values and backtest gaps

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A stored document is a cache of what the rows say (forecaster.documents). Documents of the
    # previous shape are dropped, not patched: the API renders a row without one from the rows,
    # with the new fields, until the next forecast stores a fresh document.
    op.execute("UPDATE predictions SET document = NULL WHERE document IS NOT NULL")


def downgrade() -> None:
    # The older shape is rendered from the rows as well: nothing to restore.
    op.execute("UPDATE predictions SET document = NULL WHERE document IS NOT NULL")
