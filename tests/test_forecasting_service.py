"""Train / promote / predict through the service layer on SQLite and PostgreSQL, and crash safety."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from cli.main import cli
from forecaster import locks, registry, service, storage
from forecaster.errors import InsufficientHistory, NoChampion
from forecaster.model import ForecastBundle, LSTMForecaster
from forecaster.providers.sample import SampleProvider
from forecaster.settings import Settings

pytestmark = pytest.mark.slow


@pytest.fixture
def lenient(settings: Settings) -> Settings:
    """Mechanics tests: promotion must not hinge on a 3-epoch model's skill."""
    return replace(settings, persistence_tolerance=10.0)


@pytest.fixture
def goog(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        service.backfill_ticker(s, SampleProvider(), "GOOG", date(2011, 6, 1), date(2013, 3, 1))


def versions(sessions: sessionmaker[Session]) -> list[tuple[int, str]]:
    with sessions() as s:
        tid = storage.get_ticker(s, "GOOG").id  # type: ignore[union-attr]
        return [(v.version, v.status) for v in storage.model_versions(s, tid)]


def test_train_promote_retrain_predict(
    goog: None, lenient: Settings, sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as s:
        with pytest.raises(NoChampion):
            service.predict_ticker(s, lenient, "GOOG")
        first = service.train_ticker(s, lenient, "GOOG")
    assert first.promoted and first.model_version.version == 1
    assert first.model_version.test_end == date(2013, 3, 1)
    assert first.evaluation["metrics"]["persistence"]["mae"] > 0
    with sessions.begin() as s:
        second = service.train_ticker(s, lenient, "GOOG")
    # same data and seed: identical MAE, so "no worse than the champion" holds
    assert second.promoted
    assert second.evaluation["champion_mae_on_window"] == pytest.approx(
        second.model_version.mae, rel=1e-3
    )
    assert versions(sessions) == [(2, "champion"), (1, "retired")]
    with sessions.begin() as s:
        p = service.predict_ticker(s, lenient, "GOOG")
        again = service.predict_ticker(s, lenient, "GOOG")  # idempotent upsert
        assert s.scalar(select(func.count()).select_from(storage.Prediction)) == 1
    assert (p.as_of_date, p.target_date) == (date(2013, 3, 1), date(2013, 3, 4))  # Fri -> Mon
    assert p.lower <= p.predicted_close <= p.upper
    assert p.last_close == pytest.approx(806.19)
    assert again.id == p.id
    with sessions() as s:
        result = service.evaluate_ticker(s, lenient, "GOOG")
        assert result.report.n > 0 and result.start == second.model_version.test_start


def test_candidate_worse_than_persistence_is_rejected(
    goog: None, settings: Settings, sessions: sessionmaker[Session]
) -> None:
    strict = replace(settings, persistence_tolerance=-0.99)  # nothing can pass
    with sessions.begin() as s:
        result = service.train_ticker(s, strict, "GOOG")
    assert not result.promoted
    assert "persistence baseline" in (result.reason or "")
    assert versions(sessions) == [(1, "rejected")]
    with sessions() as s, pytest.raises(NoChampion):
        service.predict_ticker(s, strict, "GOOG")


@pytest.mark.parametrize("where", ["save", "fit"])
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

    if where == "save":
        real_save = ForecastBundle.save

        def half_save(self: ForecastBundle, directory: object) -> None:
            monkeypatch.setattr("forecaster.model.os.rename", killed)  # dies just before publishing
            real_save(self, directory)  # type: ignore[arg-type]

        monkeypatch.setattr(ForecastBundle, "save", half_save)
    else:
        monkeypatch.setattr(LSTMForecaster, "fit", killed)
    with pytest.raises(KeyboardInterrupt), sessions.begin() as s:
        service.train_ticker(s, lenient, "GOOG")
    monkeypatch.undo()
    assert versions(sessions) == [(1, "champion")]
    models_dir = lenient.resolved_models_dir.resolve()
    # only v1's artifact: no half-written v0002, no temporary directory
    assert [p.name[:5] for p in (models_dir / "GOOG").iterdir()] == ["v0001"]
    registry._load_cached.cache_clear()  # a fresh process loads the champion from disk
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


def test_cli_train_predict_models_evaluate(
    goog: None, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STOCKCAST_PERSISTENCE_TOLERANCE", "10")
    runner = CliRunner()
    result = runner.invoke(cli, ["train", "GOOG"])
    assert result.exit_code == 0, result.output
    assert "GOOG: v1 trained on" in result.stdout and "-> champion" in result.stdout
    # the pipeline's step on stored prices: trained, promoted and forecast with the champion
    assert "GOOG: 2013-03-04 close forecast" in result.stdout and "(champion v1)" in result.stdout
    result = runner.invoke(cli, ["train", "GOOG"])  # retrains although nothing new was stored
    assert result.exit_code == 0 and "GOOG: v2 trained on" in result.stdout
    result = runner.invoke(cli, ["predict", "GOOG"])
    assert result.exit_code == 0, result.output
    assert "GOOG: 2013-03-04 close forecast" in result.stdout
    result = runner.invoke(cli, ["models", "list", "GOOG"])
    assert result.exit_code == 0 and "champion" in result.stdout
    result = runner.invoke(cli, ["evaluate", "GOOG"])
    assert result.exit_code == 0, result.output
    assert "persistence" in result.stdout and "MAE ratio model/persistence" in result.stdout
    result = runner.invoke(cli, ["evaluate", "GOOG", "--start", "2011-07-01"])
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
