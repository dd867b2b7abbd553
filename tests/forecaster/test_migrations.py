"""The schema comes only from Alembic: upgrade to head, downgrade to base, and back, on both databases."""

from __future__ import annotations

from sqlalchemy import Engine, inspect

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


def _store_goog(engine: Engine) -> None:
    """One ticker row in the columns every schema version has."""
    from sqlalchemy import text

    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO tickers (symbol, provider, created_at) "
                "VALUES ('GOOG', 'sample', CURRENT_TIMESTAMP)"
            )
        )


def test_0005_keeps_existing_tickers_tracked_and_downgrades(db_url: str) -> None:
    """Tickers stored before the tracked universe existed stay tracked (the pipeline refreshed
    them or an operator backfilled them); downgrading drops the column and its indexes only."""
    from sqlalchemy import text

    engine = storage.make_engine(db_url)
    try:
        migrate.downgrade(db_url, "0004")
        assert "tracked" not in {c["name"] for c in inspect(engine).get_columns("tickers")}
        _store_goog(engine)
        migrate.upgrade(db_url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT symbol, tracked FROM tickers")).all() == [
                ("GOOG", True)
            ]
        indexes = {i["name"] for i in inspect(engine).get_indexes("tickers")}
        assert "ix_tickers_tracked_symbol" in indexes
        migrate.downgrade(db_url, "0004")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT symbol FROM tickers")).scalars().all() == ["GOOG"]
        migrate.upgrade(db_url)
        assert migrate.is_at_head(engine)
    finally:
        engine.dispose()


def test_0007_adds_a_nullable_document_and_downgrades(db_url: str) -> None:
    """Predictions gain a nullable `document`; rows stored before keep null (the API renders
    them), and downgrading drops only that column."""
    from sqlalchemy import text

    engine = storage.make_engine(db_url)
    try:
        migrate.downgrade(db_url, "0006")
        assert "document" not in {c["name"] for c in inspect(engine).get_columns("predictions")}
        _store_goog(engine)
        migrate.upgrade(db_url)
        columns = {c["name"]: c for c in inspect(engine).get_columns("predictions")}
        assert columns["document"]["nullable"] is True
        migrate.downgrade(db_url, "0006")
        assert "document" not in {c["name"] for c in inspect(engine).get_columns("predictions")}
        with engine.connect() as conn:
            assert conn.execute(text("SELECT symbol FROM tickers")).scalars().all() == ["GOOG"]
        migrate.upgrade(db_url)
        assert migrate.is_at_head(engine)
    finally:
        engine.dispose()
