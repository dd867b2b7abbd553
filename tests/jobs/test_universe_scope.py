"""The pipeline in universe scope (STOCKCAST_MODEL_SCOPE=universe): every ticker's new days are
stored by its own step, then one universe step fits one network for all of them and registers
and forecasts each ticker. Real Keras fits (tiny networks), SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date

import pytest
from jobhelpers import run_pipeline
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from forecaster import service, storage, universe, universe_training
from forecaster.providers.synthetic import SyntheticProvider
from forecaster.settings import Settings

pytestmark = pytest.mark.slow
SYMBOLS = ["SYN-AR30-5", "SYN-RW-5", "SYN-GARCH-5"]


@pytest.fixture
def universe_settings(pipeline_settings: Settings) -> Settings:
    return pipeline_settings.replace(
        model_scope="universe",
        ensemble=2,
        backtest_days=120,
        backtest_refit_every=60,
        min_backtest_forecasts=0,
    )


def register(sessions: sessionmaker[Session], symbols: list[str]) -> None:
    with sessions.begin() as s:
        for symbol in symbols:  # ~280 days each
            service.backfill_ticker(s, SyntheticProvider(), symbol, date(2017, 12, 1), None)


def newest(sessions: sessionmaker[Session], symbol: str) -> storage.ModelVersion | None:
    with sessions() as s:
        ticker = storage.get_ticker(s, symbol)
        assert ticker is not None
        versions = storage.model_versions(s, ticker.id)
        return versions[0] if versions else None


def run_steps(sessions: sessionmaker[Session], run_id: int) -> dict[str, storage.JobStep]:
    with sessions() as s:
        rows = s.scalars(select(storage.JobStep).where(storage.JobStep.run_id == run_id)).all()
    return {row.ticker: row for row in rows}


def test_one_fit_for_the_universe_then_every_ticker_is_registered_and_forecast(
    universe_settings: Settings, sessions: sessionmaker[Session]
) -> None:
    register(sessions, SYMBOLS)
    report = run_pipeline(universe_settings, SYMBOLS, fetch=False)
    assert report.status == "succeeded", [(o.ticker, o.error) for o in report.steps]
    steps = run_steps(sessions, report.run_id)
    assert set(steps) == {*SYMBOLS, "universe"}
    assert all(steps[s].model_version_id is None for s in SYMBOLS)  # they only store prices
    # a chord: each ticker's fetch step, then the universe step, then each ticker's forecast
    assert [o.ticker for o in report.steps].count("universe") == 1
    with sessions() as s:
        rows = s.scalars(
            select(storage.JobStep)
            .where(storage.JobStep.run_id == report.run_id)
            .order_by(storage.JobStep.id)
        ).all()
    kinds = [
        "universe"
        if r.ticker == "universe"
        else "forecast"
        if "forecast for" in (r.detail or "")
        else "fetch"
        for r in rows
    ]
    assert kinds == ["fetch"] * 3 + ["universe"] + ["forecast"] * 3
    assert "universe fit on 3 tickers" in (steps["universe"].detail or "")
    for symbol in SYMBOLS:
        version = newest(sessions, symbol)
        assert version is not None and version.status == "champion"
        assert version.config["scope"] == "universe" and version.config["ensemble"] == 2
        info = version.metrics["backtest"]["universe"]
        assert info["tickers"] == 3 and info["members"] == 2
        members = version.metrics["backtest"]["ensemble"]["member_dm_best_pvalues"]
        assert len(members) == 2
        with sessions() as s:
            ticker = storage.get_ticker(s, symbol)
            assert ticker is not None and storage.latest_prediction(s, ticker.id) is not None

    # a second night with nothing new trains nothing
    again = run_pipeline(universe_settings, SYMBOLS, fetch=False)
    assert "retraining skipped" in (run_steps(sessions, again.run_id)["universe"].detail or "")
    assert all(newest(sessions, s).version == 1 for s in SYMBOLS)  # type: ignore[union-attr]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # storage: the test above
def test_a_ticker_added_is_forecast_the_same_night_and_a_removed_one_leaves_the_fit(
    universe_settings: Settings, sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    universe_settings = universe_settings.replace(ensemble=1)  # the ensemble: the test above
    register(sessions, SYMBOLS)
    run_pipeline(universe_settings, SYMBOLS, fetch=False)
    register(sessions, ["SYN-AR50-5"])  # added (and tracked) after the universe was trained
    report = run_pipeline(universe_settings, fetch=False)  # every tracked ticker
    assert report.status == "succeeded", [(o.ticker, o.error) for o in report.steps]
    added = newest(sessions, "SYN-AR50-5")
    assert added is not None and added.metrics["backtest"]["universe"]["tickers"] == 4
    with sessions() as s:
        ticker = storage.get_ticker(s, "SYN-AR50-5")
        assert ticker is not None and storage.latest_prediction(s, ticker.id) is not None
        universe.untrack(s, ["SYN-RW-5"])
        s.commit()
    report = run_pipeline(universe_settings, fetch=False, force_train=True)
    assert report.status == "succeeded"
    assert "SYN-RW-5" not in run_steps(sessions, report.run_id)
    for symbol in ("SYN-AR30-5", "SYN-GARCH-5", "SYN-AR50-5"):
        version = newest(sessions, symbol)
        assert version is not None and version.metrics["backtest"]["universe"]["tickers"] == 3
    assert newest(sessions, "SYN-RW-5").version == 2  # type: ignore[union-attr]

    # A fit that fails fails the step; every ticker's champion still forecasts the next session.
    def broken(*_: object) -> None:
        raise RuntimeError("out of memory")

    monkeypatch.setattr(universe_training, "train_universe", broken)
    report = run_pipeline(universe_settings, fetch=False, force_train=True)
    step = run_steps(sessions, report.run_id)["universe"]
    assert step.status == "failed" and step.error_code == "internal_error"
    assert "the universe fit failed" in (step.detail or "")
    with sessions() as s:  # then each ticker's forecast step, fanned out after it
        rows = s.scalars(select(storage.JobStep).where(storage.JobStep.run_id == report.run_id))
        forecasts = {r.ticker for r in rows if "forecast for" in (r.detail or "")}
    assert forecasts == {"SYN-AR30-5", "SYN-GARCH-5", "SYN-AR50-5"}


def test_ticker_scope_keeps_todays_configuration(pipeline_settings: Settings) -> None:
    from forecaster.training import training_config

    assert "scope" not in training_config(pipeline_settings)
    scoped = training_config(pipeline_settings.replace(model_scope="universe"))
    assert scoped["scope"] == "universe"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # storage: the tests above
def test_a_quiet_night_reuses_the_backtest_and_fine_tunes_the_networks(
    universe_settings: Settings, sessions: sessionmaker[Session]
) -> None:
    universe_settings = universe_settings.replace(ensemble=1)  # the ensemble: the first test
    with sessions.begin() as s:
        for symbol in SYMBOLS:
            service.backfill_ticker(
                s, SyntheticProvider(), symbol, date(2017, 12, 1), date(2018, 12, 27)
            )
    cold = run_pipeline(universe_settings, SYMBOLS, fetch=False)
    assert cold.status == "succeeded"
    first = {s: newest(sessions, s) for s in SYMBOLS}
    with sessions.begin() as s:  # one new trading day
        for symbol in SYMBOLS:
            service.backfill_ticker(s, SyntheticProvider(), symbol, None, date(2018, 12, 31))
    quiet = run_pipeline(universe_settings, SYMBOLS, fetch=False)
    assert quiet.status == "succeeded", [(o.ticker, o.error) for o in quiet.steps]
    assert "quiet night" in (run_steps(sessions, quiet.run_id)["universe"].detail or "")
    for symbol in SYMBOLS:
        before, after = first[symbol], newest(sessions, symbol)
        assert before is not None and after is not None and after.version == 2
        assert after.trained_through == date(2018, 12, 31)
        assert after.metrics["backtest"]["end"] == before.metrics["backtest"]["end"]  # reused
        assert after.metrics["serving"]["warm_started_from"] == 1
        assert after.metrics["backtest"]["universe"]["warm_start"] is True


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # storage: the tests above
def test_a_ticker_whose_history_ends_before_the_backtest_is_trained_on_its_own(
    universe_settings: Settings, sessions: sessionmaker[Session]
) -> None:
    universe_settings = universe_settings.replace(ensemble=1)  # the ensemble: the first test
    register(sessions, SYMBOLS)
    with sessions.begin() as s:  # stale data: it stopped a year before the others
        service.backfill_ticker(
            s, SyntheticProvider(), "SYN-AR50-6", date(2016, 12, 1), date(2017, 12, 29)
        )
    report = run_pipeline(universe_settings, [*SYMBOLS, "SYN-AR50-6"], fetch=False)
    assert report.status == "succeeded", [(o.ticker, o.error) for o in report.steps]
    stale = newest(sessions, "SYN-AR50-6")
    assert stale is not None and "universe" not in stale.metrics["backtest"]
    assert stale.metrics["backtest"]["end"] == "2017-12-29"
    assert newest(sessions, "SYN-AR30-5").metrics["backtest"]["universe"]["tickers"] == 3  # type: ignore[union-attr]
    with sessions() as s:
        ticker = storage.get_ticker(s, "SYN-AR50-6")
        assert ticker is not None and storage.latest_prediction(s, ticker.id) is not None
