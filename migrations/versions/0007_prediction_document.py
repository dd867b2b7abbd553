"""predictions keep their rendered forecast document (predictions.document)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The body of GET /v1/forecasts/<ticker> (forecaster.documents), written with the prediction
    # so the API serves it with one read. Null on rows stored before: the API renders those.
    op.add_column("predictions", sa.Column("document", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        batch.drop_column("document")
