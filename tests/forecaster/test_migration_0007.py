"""0007: predictions gain a nullable `document`; rows stored before keep null (the API renders
them), and downgrading drops only that column."""

from __future__ import annotations

from sqlalchemy import inspect, text

from forecaster import migrate, storage


def test_0007_adds_a_nullable_document_and_downgrades(db_url: str) -> None:
    engine = storage.make_engine(db_url)
    try:
        migrate.downgrade(db_url, "0006")
        assert "document" not in {c["name"] for c in inspect(engine).get_columns("predictions")}
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO tickers (symbol, provider, created_at) "
                    "VALUES ('GOOG', 'sample', CURRENT_TIMESTAMP)"
                )
            )
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
