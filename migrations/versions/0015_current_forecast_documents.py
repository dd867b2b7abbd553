"""forecast documents are kept current: those that would need their model status patched go

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03

From this release a promotion renders the newest forecast's document again in its transaction
(forecaster.registry), and the API serves a stored document as it is. A document written
before, by a version retired since, says "champion": it is cleared, and the API renders that
forecast from its rows until the ticker's next forecast (as it does for rows written before
documents existed).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | Sequence[str] | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "UPDATE predictions SET document = NULL WHERE document IS NOT NULL AND model_version_id "
        "IN (SELECT id FROM model_versions WHERE status <> 'champion')"
    )


def downgrade() -> None:
    pass  # a cleared document is rendered from its rows by every release that stores documents
