"""The dialect's INSERT ... ON CONFLICT, shared by every idempotent write."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from forecaster.storage.schema import Base


def insert_for(session: Session, model: type[Base]) -> Any:
    """The dialect's INSERT, which has on_conflict_do_update / on_conflict_do_nothing."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(model)
    if dialect == "sqlite":
        return sqlite.insert(model)
    raise NotImplementedError(f"upsert not supported on {dialect}")  # pragma: no cover


def upsert(
    session: Session, model: type[Base], rows: Sequence[dict[str, Any]], keys: list[str]
) -> None:
    stmt = insert_for(session, model)
    update_cols = {c: stmt.excluded[c] for c in rows[0] if c not in keys}
    stmt = stmt.on_conflict_do_update(index_elements=keys, set_=update_cols)
    for start in range(0, len(rows), 1000):
        session.execute(stmt, list(rows[start : start + 1000]))
