"""The schema comes only from Alembic: upgrade to head, downgrade to base, and back, on both databases."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
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


@pytest.mark.slow  # trains a tiny network: the artifact moved must be one that loads
def test_0011_moves_artifacts_into_the_database_and_downgrade_writes_them_back(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each version's directory (model.keras + meta.json) becomes a row that loads and predicts;
    a version whose directory is gone keeps its figures without one; a downgrade writes every
    stored artifact to <STOCKCAST_DATA_DIR>/models and points artifact_path at it."""
    import json

    import sqlalchemy as sa

    from forecaster import artifacts
    from forecaster.params import ModelParams
    from forecaster.providers.sample import SampleProvider
    from forecaster.settings import Settings
    from forecaster.training import train

    prices = SampleProvider().fetch("GOOG", date(2012, 1, 1), date(2013, 3, 1))
    tiny = Settings().replace(
        model=ModelParams(units=(4, 2), epochs=1, batch_size=64), backtest_days=60,
        backtest_refit_every=60,
    )  # fmt: skip
    packed = artifacts.pack(train(prices, tiny, "GOOG").bundle)
    # the volume is mounted under this host's data dir, not where the rows say (another host)
    old = tmp_path / "data" / "models" / "GOOG" / "v0001-0123abcd"
    old.mkdir(parents=True)
    recorded = Path("/mnt/elsewhere/models/GOOG") / old.name
    (old / "model.keras").write_bytes(packed.network)
    (old / "meta.json").write_text(json.dumps(packed.meta, indent=2))

    engine = storage.make_engine(db_url)
    versions = sa.table(
        "model_versions",
        *(sa.column(c) for c in ("id", "ticker_id", "version", "status", "artifact_path")),
        *(sa.column(c) for c in ("train_start", "train_end", "test_start", "test_end")),
        *(sa.column(c) for c in ("n_train", "train_seconds", "mae", "persistence_mae")),
        *(sa.column(c) for c in ("mae_ratio", "interval_halfwidth", "interval_coverage")),
        sa.column("config", sa.JSON()),
        sa.column("metrics", sa.JSON()),
        sa.column("trained_at", sa.DateTime(timezone=True)),
    )
    day = date(2013, 3, 1)
    try:
        migrate.downgrade(db_url, "0010")
        _store_goog(engine)
        with engine.begin() as conn:
            ticker_id = conn.execute(sa.text("SELECT id FROM tickers")).scalar_one()
            for number, status, path in (
                (1, "retired", tmp_path / "gone" / "v0001"),  # its directory was deleted
                (2, "champion", recorded),
            ):
                conn.execute(
                    versions.insert().values(
                        id=number, ticker_id=ticker_id, version=number, status=status,
                        artifact_path=str(path), config={}, metrics={}, train_start=day,
                        train_end=day, test_start=day, test_end=day, n_train=1,
                        train_seconds=1.0, mae=1.0, persistence_mae=1.0, mae_ratio=1.0,
                        interval_halfwidth=0.1, interval_coverage=0.9,
                        trained_at=storage.utcnow(),
                    )
                )  # fmt: skip
        # the champion's directory is nowhere to be found: refused, nothing changed
        monkeypatch.setenv("STOCKCAST_DATA_DIR", str(tmp_path / "empty"))
        with pytest.raises(RuntimeError, match=r"migration 0011 stopped.*GOOG v2"):
            migrate.upgrade(db_url)
        assert migrate.current_revision(engine) == "0010"
        assert "model_artifacts" not in inspect(engine).get_table_names()
        monkeypatch.setenv("STOCKCAST_DATA_DIR", str(tmp_path / "data"))
        migrate.upgrade(db_url)
        assert "artifact_path" not in {
            c["name"] for c in inspect(engine).get_columns("model_versions")
        }
        artifacts.clear_cache()
        with storage.make_session_factory(engine)() as s:
            assert artifacts.sizes(s, ticker_id) == {2: len(packed.network)}  # v1: figures only
            champion = storage.champion(s, ticker_id)
            assert champion is not None
            loaded = artifacts.load(s, champion)
            assert loaded.predict_next(prices) == artifacts.unpack(packed).predict_next(prices)

        migrate.downgrade(db_url, "0010")
        assert "model_artifacts" not in inspect(engine).get_table_names()
        with engine.connect() as conn:
            paths = dict(
                conn.execute(sa.text("SELECT version, artifact_path FROM model_versions")).all()
            )
        back = Path(paths[2])
        assert back.parent == (tmp_path / "data" / "models" / "GOOG").resolve()
        assert (back / "model.keras").read_bytes() == packed.network
        assert json.loads((back / "meta.json").read_text()) == packed.meta
        assert paths[1] == ""  # nothing was stored for v1: nothing written back
    finally:
        migrate.upgrade(db_url)
        assert migrate.is_at_head(engine)
        engine.dispose()
