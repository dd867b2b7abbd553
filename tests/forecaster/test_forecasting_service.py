"""Train / promote / predict through the service layer on SQLite and PostgreSQL, and crash safety."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from cli.main import cli
from forecaster import artifacts, locks, service, storage
from forecaster.errors import InsufficientHistory, NoChampion
from forecaster.model import LSTMForecaster
from forecaster.providers.sample import SampleProvider
from forecaster.settings import Settings

pytestmark = pytest.mark.slow


@pytest.fixture
def lenient(settings: Settings) -> Settings:
    """Mechanics tests: a 120-forecast backtest is enough evidence, and lower MAE is enough."""
    return settings.replace(min_backtest_forecasts=0, skill_alpha=1.0)


@pytest.fixture
def goog(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        service.backfill_ticker(s, SampleProvider(), "GOOG", date(2011, 6, 1), date(2013, 3, 1))


def versions(sessions: sessionmaker[Session]) -> list[tuple[int, str]]:
    with sessions() as s:
        tid = service.require_ticker(s, "GOOG").id
        return [(v.version, v.status) for v in storage.model_versions(s, tid)]


def test_train_promote_retrain_predict(
    goog: None, lenient: Settings, sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as s:
        with pytest.raises(NoChampion):
            service.predict_ticker(s, lenient, "GOOG")
        first = service.train_ticker(s, lenient, "GOOG")
    v1 = first.model_version
    assert first.promoted and v1.version == 1
    assert v1.trained_through == v1.test_end == date(2013, 3, 1)  # served weights saw every day
    backtest = first.evaluation["backtest"]
    assert backtest["scheme"] == "rolling-origin" and backtest["n_forecasts"] == 120
    assert backtest["metrics"]["persistence"]["mae"] > 0
    assert v1.method in ("lstm", "persistence", "drift", "median_return") and v1.method_reason
    with sessions.begin() as s:
        second = service.train_ticker(s, lenient, "GOOG")
    # the freshest version is the champion; the same data and seed give the same backtest
    assert second.promoted
    assert second.model_version.mae == pytest.approx(v1.mae, rel=1e-3)
    assert versions(sessions) == [(2, "champion"), (1, "retired")]
    with sessions.begin() as s:
        p = service.predict_ticker(s, lenient, "GOOG")
        again = service.predict_ticker(s, lenient, "GOOG")  # idempotent upsert
        assert s.scalar(select(func.count()).select_from(storage.Prediction)) == 1
    assert (p.as_of_date, p.target_date) == (date(2013, 3, 1), date(2013, 3, 4))  # Fri -> Mon
    assert p.lower <= p.predicted_close <= p.upper
    assert p.last_close == pytest.approx(806.19)
    assert p.method == second.model_version.method
    assert again.id == p.id
    with sessions() as s:
        result = service.evaluate_ticker(s, lenient, "GOOG")
        # every stored day was used to fit the served network: nothing new to score yet
        assert result.backtest == backtest and result.live is None
    with sessions.begin() as s:  # v3 promoted: v2, which made the stored forecast, is retired
        assert service.train_ticker(s, lenient, "GOOG").promoted
    with sessions() as s:  # and the served document says so, rendered in that transaction
        model = json.loads(s.scalar(select(storage.Prediction.document)) or "{}")["model"]
    assert (model["version"], model["status"]) == (2, "retired")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # serving rule, not storage
def test_without_enough_evidence_a_baseline_serves(
    goog: None, settings: Settings, sessions: sessionmaker[Session]
) -> None:
    # 120 backtest forecasts < the default 250: the network never serves, whatever its MAE
    with sessions.begin() as s:
        result = service.train_ticker(s, settings, "GOOG")
        p = service.predict_ticker(s, settings, "GOOG")
    v = result.model_version
    assert result.promoted and versions(sessions) == [(1, "champion")]
    assert v.method == v.metrics["backtest"]["best_baseline"] != "lstm"
    assert "too little evidence" in (v.method_reason or "")
    assert p.method == v.method and p.method_reason == v.method_reason


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # serving math, not storage
@pytest.mark.parametrize("method", ["lstm", "persistence", "drift", "median_return"])
def test_each_serving_method_forecasts(
    goog: None, settings: Settings, sessions: sessionmaker[Session], method: str
) -> None:
    import numpy as np

    from forecaster.evaluation import ewma_volatility

    with sessions.begin() as s:
        v = service.train_ticker(s, settings, "GOOG").model_version
        v.method = method  # what the serving rule would have chosen
    with sessions.begin() as s:
        p = service.predict_ticker(s, settings, "GOOG")
        close = storage.load_prices(s, p.ticker_id)["close"].to_numpy()
    serving = v.metrics["serving"]
    expected_log_return = {
        "persistence": 0.0,
        "median_return": serving["median_log_return"],
        "drift": float(np.log(close[-1] / close[-253]) / 252),
    }
    assert p.method == method and p.last_close == pytest.approx(close[-1])
    if method == "lstm":
        assert p.predicted_close != pytest.approx(close[-1], rel=1e-9)
    else:
        assert p.predicted_close == pytest.approx(
            close[-1] * np.exp(expected_log_return[method]), rel=1e-9
        )
    # the interval: the method's conformal scale times today's volatility, around the forecast
    key = "model" if method == "lstm" else method
    half = serving["interval_scales"][key] * ewma_volatility(close)[-1]
    assert np.log(p.upper / p.predicted_close) == pytest.approx(half, rel=1e-6)
    assert np.log(p.predicted_close / p.lower) == pytest.approx(half, rel=1e-6)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("where", ["store", "fit"])
def test_crash_during_training_keeps_previous_champion(
    goog: None,
    lenient: Settings,
    sessions: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
    where: str,
) -> None:
    with sessions.begin() as s:
        service.train_ticker(s, lenient, "GOOG")
        before = service.predict_ticker(s, lenient, "GOOG").predicted_close

    def killed(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt("killed mid-way")

    if where == "store":
        real_store = artifacts.store

        def store_then_die(*args: Any) -> None:
            real_store(*args)  # the version and its artifact are written, not committed
            killed()

        monkeypatch.setattr(artifacts, "store", store_then_die)
    else:
        monkeypatch.setattr(LSTMForecaster, "fit", killed)  # a full training
        monkeypatch.setattr(LSTMForecaster, "fine_tune", killed)  # a quiet night's warm start
    with pytest.raises(KeyboardInterrupt), sessions.begin() as s:
        service.train_ticker(s, lenient, "GOOG")
    monkeypatch.undo()
    assert versions(sessions) == [(1, "champion")]
    with sessions() as s:  # only v1's artifact: the rollback took v2's row and artifact
        assert s.scalar(select(func.count()).select_from(storage.ModelArtifact)) == 1
    artifacts.clear_cache()  # a fresh process loads the champion from the database
    with sessions.begin() as s:
        assert service.predict_ticker(s, lenient, "GOOG").predicted_close == pytest.approx(before)


def test_insufficient_history(settings: Settings, sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        service.backfill_ticker(s, SampleProvider(), "GOOG", date(2013, 1, 1), date(2013, 3, 1))
    with (
        sessions() as s,
        pytest.raises(InsufficientHistory, match="GOOG: 41 stored trading days, at least 67"),
    ):
        service.train_ticker(s, settings, "GOOG")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # CLI output, not storage
def test_cli_train_predict_models_evaluate(
    goog: None, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["train", "GOOG"])
    assert result.exit_code == 0, result.output
    assert "GOOG: v1 trained through 2013-03-01 on" in result.stdout
    assert "-> champion, serves " in result.stdout and "too little evidence" in result.stdout
    # the pipeline's step on stored prices: trained, promoted and forecast with the champion
    assert "GOOG: 2013-03-04 close forecast" in result.stdout and "champion v1)" in result.stdout
    result = runner.invoke(cli, ["train", "GOOG"])  # retrains although nothing new was stored
    assert result.exit_code == 0 and "GOOG: v2 trained through" in result.stdout
    result = runner.invoke(cli, ["predict", "GOOG"])
    assert result.exit_code == 0, result.output
    assert "GOOG: 2013-03-04 close forecast" in result.stdout and "; method " in result.stdout
    result = runner.invoke(cli, ["models", "list", "GOOG"])
    assert result.exit_code == 0 and "champion" in result.stdout and "DM p" in result.stdout
    result = runner.invoke(cli, ["evaluate", "GOOG"])
    assert result.exit_code == 0, result.output
    assert "rolling-origin backtest" in result.stdout and "DM p" in result.stdout
    assert "median_return" in result.stdout and "no new stored days" in result.stdout
    result = runner.invoke(cli, ["evaluate", "GOOG", "--start", "2013-01-02"])
    assert result.exit_code == 1 and "never saw" in result.stderr
    result = runner.invoke(cli, ["predict", "^GSPC"])
    assert result.exit_code == 1 and "not in the database" in result.stderr


def test_cli_train_refuses_a_ticker_another_run_holds(
    goog: None, env: dict[str, str], engine: Engine, sessions: sessionmaker[Session]
) -> None:
    with locks.hold(engine, locks.ticker_lock_name("GOOG")):
        result = CliRunner().invoke(cli, ["train", "GOOG", "NOPE"])
    assert result.exit_code == 1
    assert "GOOG: error:" in result.stderr and "held by another run" in result.stderr
    assert "NOPE: error: unknown ticker 'NOPE'" in result.stderr
    assert versions(sessions) == []


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_only_a_fresh_version_of_the_same_configuration_skips_retraining(
    goog: None, settings: Settings, sessions: sessionmaker[Session]
) -> None:
    from forecaster.params import ModelParams

    with sessions.begin() as s:
        v = service.train_ticker(s, settings, "GOOG").model_version
    with sessions.begin() as s:
        assert service.latest_model_covers_data(s, settings, "GOOG") is not None
        other = settings.replace(model=ModelParams(units=(8, 4), epochs=3, seed=7))
        assert service.latest_model_covers_data(s, other, "GOOG") is None  # config changed
        s.get_one(storage.ModelVersion, v.id).trained_through = None
    with sessions.begin() as s:
        # a version from before refit-on-all (weights fit on the first 70% only): retrain
        assert service.latest_model_covers_data(s, settings, "GOOG") is None
