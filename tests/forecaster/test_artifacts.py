"""Model artifacts in the database: packed and loaded with Keras' safe mode, committed with their
version row or not at all, cached by digest, pruned by retention, on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, inspect, select, text
from sqlalchemy.orm import Session, sessionmaker
from tinymodel import TINY

from forecaster import artifacts, registry, storage
from forecaster.errors import ModelArtifactError
from forecaster.model import ForecastBundle, SharedPart
from forecaster.settings import Settings
from forecaster.training import TrainingOutcome

FEATURES = ("open", "high", "low", "volume", "close")

pytestmark = pytest.mark.slow


def test_pack_unpack_round_trip(outcome: TrainingOutcome, prices: pd.DataFrame) -> None:
    packed = artifacts.pack(outcome.bundle)
    assert packed.network[:2] == b"PK"  # a .keras file is a zip archive
    assert packed.meta["format"] == artifacts.FORMAT
    loaded = artifacts.unpack(packed)
    assert loaded.stats == outcome.bundle.stats
    assert loaded.predict_next(prices) == outcome.bundle.predict_next(prices)


def test_corrupt_or_foreign_artifacts_are_one_line_errors(outcome: TrainingOutcome) -> None:
    packed = artifacts.pack(outcome.bundle)
    with pytest.raises(ModelArtifactError, match=r"^cannot load v9: .* not a .keras archive$"):
        artifacts.unpack(artifacts.Artifact(b"not a zip file", packed.meta), "v9")
    damaged = packed.network[: len(packed.network) // 2] + bytes(len(packed.network) // 2)
    with pytest.raises(ModelArtifactError, match=r"^cannot load v9: ") as err:
        artifacts.unpack(artifacts.Artifact(damaged, packed.meta), "v9")
    assert "\n" not in str(err.value) and "/tmp" not in str(err.value)
    with pytest.raises(ModelArtifactError, match="unsupported artifact format 99"):
        artifacts.unpack(artifacts.Artifact(packed.network, {**packed.meta, "format": 99}))


def _ticker(sessions: sessionmaker[Session]) -> int:
    with sessions.begin() as s:
        return storage.get_or_create_ticker(s, "GOOG", "sample").id


def _counts(sessions: sessionmaker[Session]) -> tuple[int, int]:
    with sessions() as s:
        versions = s.scalar(select(func.count()).select_from(storage.ModelVersion))
        stored = s.scalar(select(func.count()).select_from(storage.ModelArtifact))
    return int(versions or 0), int(stored or 0)


def test_a_version_and_its_artifact_commit_together(
    outcome: TrainingOutcome,
    prices: pd.DataFrame,
    settings: Settings,
    sessions: sessionmaker[Session],
) -> None:
    ticker_id = _ticker(sessions)
    with sessions() as s:  # written, then rolled back: as a process killed before its commit
        registry.register(s, settings, s.get_one(storage.Ticker, ticker_id), outcome)
        assert s.scalar(select(func.count()).select_from(storage.ModelArtifact)) == 1
        s.rollback()
    assert _counts(sessions) == (0, 0)

    with sessions.begin() as s:
        registry.register(s, settings, s.get_one(storage.Ticker, ticker_id), outcome)
    assert _counts(sessions) == (1, 1)
    artifacts.clear_cache()  # a new worker process: everything comes from the database
    with sessions() as s:
        version, bundle = registry.load_champion(s, s.get_one(storage.Ticker, ticker_id))
        assert bundle.predict_next(prices) == outcome.bundle.predict_next(prices)
        assert registry.load_champion(s, version.ticker)[1] is bundle  # cached by digest
        stored = artifacts.read(s, version.id)
        assert stored is not None and stored.meta == artifacts.pack(outcome.bundle).meta
        assert artifacts.sizes(s, ticker_id) == {version.id: len(stored.network)}


def test_retention_keeps_the_champion_and_the_newest_versions(
    outcome: TrainingOutcome, settings: Settings, sessions: sessionmaker[Session]
) -> None:
    keep2 = settings.replace(keep_versions=2)
    ticker_id = _ticker(sessions)
    for _ in range(4):
        with sessions.begin() as s:
            registry.register(s, keep2, s.get_one(storage.Ticker, ticker_id), outcome)
    with sessions.begin() as s:
        versions = {v.version: v for v in storage.model_versions(s, ticker_id)}
        assert sorted(versions) == [1, 2, 3, 4]  # every version keeps its row and figures
        kept = {versions[n].id for n in (3, 4)}
        assert set(artifacts.sizes(s, ticker_id)) == kept
        with pytest.raises(ModelArtifactError, match=r"GOOG v1 is not stored \(pruned"):
            artifacts.load(s, versions[1])
        # a champion older than the newest `keep` (an operator's rollback) keeps its artifact
        versions[4].status = "retired"
        s.flush()
        versions[3].status = "champion"
        s.flush()
        assert artifacts.prune(s, ticker_id, 1) == 0  # v4 is the newest, v3 the champion
        versions[3].status = "retired"
        s.flush()
        assert artifacts.prune(s, ticker_id, 1) == 1  # v3 is neither any more
        assert set(artifacts.sizes(s, ticker_id)) == {versions[4].id}


def _universe_bundles(
    seed: int,
) -> tuple[SharedPart, dict[str, ForecastBundle], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """A tiny universe fit and each ticker's bundle as universe_training builds it (its network
    sharing the fit's ensemble, packed once); and each ticker's validation windows with the
    universe model's forecasts of them."""
    from forecaster.model import LSTMForecaster
    from forecaster.pooled import Panel, UniverseForecaster
    from forecaster.providers.synthetic import SyntheticProvider
    from forecaster.windows import fit_stats, make_windows

    params = TINY.model.replace(seed=seed)
    panels, stats = [], {}
    for symbol in ("SYN-AR30-8", "SYN-RW-8"):
        prices = SyntheticProvider().fetch(symbol, None, None).iloc[-300:]
        stats[symbol] = fit_stats(prices, 7, FEATURES, prices.index[256].date())
        ws = make_windows(prices, stats[symbol])
        panels.append(Panel(symbol, ws.X[:200], ws.y[:200], ws.X[200:250], ws.y[200:250]))
    model = UniverseForecaster(params, members=2, feature_names=FEATURES).fit(panels)
    shared = artifacts.pack_shared(model.shared_network())
    bundles = {
        p.symbol: ForecastBundle(
            LSTMForecaster.from_keras(model.ticker_network(p.symbol), params.to_dict()),
            stats[p.symbol],
            0.01,
            0.9,
            shared=shared,
        )
        for p in panels
    }
    seen = {p.symbol: (p.X_val, model.predict(p.symbol, p.X_val)) for p in panels}
    return shared, bundles, seen


def _shared_rows(sessions: sessionmaker[Session]) -> list[str]:
    with sessions() as s:
        return sorted(s.scalars(select(storage.SharedNetwork.sha256)).all())


def test_a_shared_network_is_stored_once_and_goes_with_the_last_artifact_using_it(
    outcome: TrainingOutcome, settings: Settings, sessions: sessionmaker[Session]
) -> None:
    """Universe scope: every ticker's version serves the fit's ensemble plus its own highway;
    the ensemble is one row, each artifact keeps its highway, and loading any ticker's version
    gives the universe model's forecasts (the ensemble deserialised once per process)."""
    shared, bundles, seen = _universe_bundles(42)
    keep1 = settings.replace(keep_versions=1)
    ids = {}
    with sessions.begin() as s:
        for symbol, bundle in bundles.items():
            ticker = storage.get_or_create_ticker(s, symbol, "synthetic")
            ids[symbol] = ticker.id
            registry.register(s, keep1, ticker, replace(outcome, bundle=bundle))
    assert _shared_rows(sessions) == [shared.sha256]
    with sessions() as s:
        rows = s.scalars(select(storage.ModelArtifact)).all()
        assert [(r.network, r.shared_sha256) for r in rows] == [(None, shared.sha256)] * 2
        assert all(r.meta["format"] == artifacts.SHARED_FORMAT for r in rows)
        assert all(r.size == len(shared.network) for r in rows)
    artifacts.clear_cache()  # a new worker: everything comes from the database
    loaded = {}
    with sessions() as s:
        for symbol in bundles:
            _, loaded[symbol] = registry.load_champion(s, s.get_one(storage.Ticker, ids[symbol]))
            windows, expected = seen[symbol]
            np.testing.assert_allclose(
                loaded[symbol].model.predict(windows),
                expected,
                rtol=1e-5,
                atol=1e-6,
            )
    first, second = (b.model.model_.get_layer("member_0") for b in loaded.values())
    assert first is second  # one deserialised ensemble for both tickers

    # A newer fit for one ticker: the old ensemble stays while the other ticker uses it ...
    newer, again, _ = _universe_bundles(7)
    symbol, other = list(bundles)
    with sessions.begin() as s:
        registry.register(
            s, keep1, s.get_one(storage.Ticker, ids[symbol]), replace(outcome, bundle=again[symbol])
        )
    assert _shared_rows(sessions) == sorted([shared.sha256, newer.sha256])
    # ... and goes with the last artifact using it (here: its ticker purged)
    with sessions.begin() as s:
        storage.purge_ticker(s, s.get_one(storage.Ticker, ids[other]))
    assert _shared_rows(sessions) == [newer.sha256]


def test_a_downgrade_below_shared_networks_stops_unless_told_to_retrain(
    outcome: TrainingOutcome, settings: Settings, sessions: sessionmaker[Session], env: dict
) -> None:
    from click.testing import CliRunner

    from cli.main import cli
    from forecaster import migrate

    _, bundles, _ = _universe_bundles(42)
    symbol, bundle = next(iter(bundles.items()))
    with sessions.begin() as s:
        ticker = storage.get_or_create_ticker(s, symbol, "synthetic")
        registry.register(s, settings, ticker, replace(outcome, bundle=bundle))
        own = storage.get_or_create_ticker(s, "GOOG", "sample")
        registry.register(s, settings, own, outcome)  # an artifact with its own network
    runner = CliRunner()
    refused = runner.invoke(cli, ["db", "downgrade", "0016"])
    assert refused.exit_code == 1 and refused.exception is not None
    assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.output
    assert "1 model artifact(s) use a shared network" in refused.stderr
    assert "-x artifacts=retrain" in refused.stderr
    assert _shared_rows(sessions) != []  # nothing changed
    done = runner.invoke(cli, ["db", "downgrade", "0016", "-x", "artifacts=retrain"])
    assert done.exit_code == 0, done.output
    engine = storage.make_engine(settings.resolved_database_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM model_artifacts")).scalar_one() == 1
            assert conn.execute(text("SELECT count(*) FROM model_versions")).scalar_one() == 2
        migrate.upgrade(settings.resolved_database_url)
        assert migrate.is_at_head(engine)
        checks = {c["name"] for c in inspect(engine).get_check_constraints("model_artifacts")}
        assert checks == {"ck_model_artifacts_own_or_shared_network"}  # the model's name
    finally:
        engine.dispose()


def test_a_shared_network_that_will_not_load_names_the_version(
    outcome: TrainingOutcome,
) -> None:
    shared, bundles, _ = _universe_bundles(42)
    packed = artifacts.pack(next(iter(bundles.values())))
    assert packed.shared == shared.sha256 and packed.network == shared.network
    artifacts.clear_cache()
    damaged = shared.network[: len(shared.network) // 2] + bytes(len(shared.network) // 2)
    with pytest.raises(ModelArtifactError, match=r"^cannot load v9: ") as err:
        artifacts.unpack(replace(packed, network=damaged), "v9")  # its digest no longer matches
    assert "\n" not in str(err.value)
    with pytest.raises(ModelArtifactError, match=r"^cannot load v9: ") as err:
        artifacts.unpack(replace(packed, meta={**packed.meta, "shared": "0" * 64}), "v9")
    assert "\n" not in str(err.value)
