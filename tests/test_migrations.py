"""The schema comes only from Alembic: upgrade to head, downgrade to base, and back, on both databases."""

from __future__ import annotations

from sqlalchemy import inspect

from forecaster import migrate, storage


def test_downgrade_to_base_and_upgrade_to_head(db_url: str) -> None:
    engine = storage.make_engine(db_url)
    try:
        assert migrate.is_at_head(engine)
        migrate.downgrade(db_url, "base")
        assert migrate.current_revision(engine) is None
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        migrate.upgrade(db_url)
        assert migrate.is_at_head(engine)
        tables = set(inspect(engine).get_table_names())
        assert set(storage.Base.metadata.tables) <= tables
    finally:
        engine.dispose()


def test_models_match_migrations(db_url: str) -> None:
    """Autogenerate against a migrated database finds nothing to do: models and migrations agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    engine = storage.make_engine(db_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), storage.Base.metadata)
    finally:
        engine.dispose()
    assert diff == []
