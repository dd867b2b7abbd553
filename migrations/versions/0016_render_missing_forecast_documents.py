"""forecast documents for older rows: each ticker's newest forecast stored without one

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04

Forecasts stored before documents existed (0007), and those whose document 0015 cleared, were
rendered from their rows by the API on every request. Each ticker's newest one (the only one
the API serves) gets its document here, rendered by forecaster.predict as a forecast stored now
would be, so the latest forecast is one read for every ticker. Older forecasts are never served
from a document and are left as they are.

This data step uses the application's models and renderer: a later migration that changes the
tables it reads (tickers, predictions, model_versions, live records) must keep it runnable.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from alembic import context, op
from sqlalchemy.orm import Session

revision: str = "0016"
down_revision: str | Sequence[str] | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    from forecaster.predict import render_missing_documents

    log = logging.getLogger("alembic.runtime.migration")
    if context.is_offline_mode():  # no database to read: SQL scripts leave them to the API
        log.info("offline: forecast documents are not rendered (the API renders them from rows)")
        return
    # The session joins alembic's transaction: alembic commits it (close() neither commits nor
    # rolls back). Its flushes mark the tickers touched; the series documents' hook runs at a
    # session commit, which this one never does, and the series holds no forecast document.
    session = Session(bind=op.get_bind())
    try:
        count = render_missing_documents(session)
    finally:
        session.close()
    log.info("rendered %d forecast documents", count)


def downgrade() -> None:
    pass  # a stored document is what the rows render: nothing to undo
