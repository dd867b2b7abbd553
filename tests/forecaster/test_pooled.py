"""Universe scope: one network for many tickers (forecaster.pooled) and its backtest with common
fold origins (forecaster.universe_backtest). Real Keras fits, tiny networks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecaster.backtest import BacktestConfig
from forecaster.highway import fit_highway
from forecaster.params import ModelParams
from forecaster.pooled import Panel, UniverseForecaster
from forecaster.providers.synthetic import SyntheticProvider, parse
from forecaster.universe_backtest import plan_universe_folds, run_universe_backtest
from forecaster.windows import fit_stats, make_windows

TINY = ModelParams(units=(4, 2), epochs=3, batch_size=64, patience=2)
FEATURES = ("open", "high", "low", "volume", "close")
CONFIG = BacktestConfig(days=120, refit_every=60)
SYMBOLS = ("SYN-AR30-7", "SYN-RW-7", "SYN-GARCH-7")


def fetch(symbol: str, days: int = 360) -> pd.DataFrame:
    return SyntheticProvider().fetch(symbol, None, None).iloc[-days:]


def panel(symbol: str, prices: pd.DataFrame, n_train: int, n_val: int) -> Panel:
    stats = fit_stats(prices, 7, FEATURES, prices.index[7 - 1 + n_train].date())
    ws = make_windows(prices, stats)
    fit = slice(n_train, n_train + n_val)
    return Panel(symbol, ws.X[:n_train], ws.y[:n_train], ws.X[fit], ws.y[fit])


def test_common_fold_origins_on_the_calendar() -> None:
    calendar = pd.bdate_range("2020-01-01", periods=300)
    folds = plan_universe_folds(calendar, 120, 50)
    assert [f.first for f in folds] == [calendar[180], calendar[230], calendar[280]]
    assert [f.origin for f in folds] == [
        d.date() for d in (calendar[179], calendar[229], calendar[279])
    ]
    assert folds[-1].last == calendar[-1]


def test_new_synthetic_processes() -> None:
    garch, quiet, loud = parse("SYN-GARCH-1"), parse("SYN-RWV1-1"), parse("SYN-AR30V4-2")
    assert garch.garch and garch.phi == 0 and garch.sigma == pytest.approx(0.012)
    assert quiet.sigma == pytest.approx(0.006) and loud.sigma == pytest.approx(0.024)
    r = np.diff(np.log(fetch("SYN-GARCH-1", 4000)["close"].to_numpy()))
    clustering = np.corrcoef(np.abs(r[1:]), np.abs(r[:-1]))[0, 1]
    mean_memory = np.corrcoef(r[1:], r[:-1])[0, 1]
    assert clustering > 0.1 and abs(mean_memory) < 0.05  # volatility clusters, the mean does not


@pytest.mark.slow
def test_a_ticker_never_seen_is_forecast_once_adopted() -> None:
    prices = {s: fetch(s) for s in (*SYMBOLS, "SYN-AR50-7")}
    panels = [panel(s, prices[s], 250, 50) for s in SYMBOLS]
    model = UniverseForecaster(TINY, members=2, feature_names=FEATURES).fit(panels)
    newcomer = panel("SYN-AR50-7", prices["SYN-AR50-7"], 250, 50)
    with pytest.raises(KeyError):
        model.predict("SYN-AR50-7", newcomer.X_val)
    model.adopt("SYN-AR50-7", newcomer.X, newcomer.y)
    forecast = model.predict("SYN-AR50-7", newcomer.X_val)
    assert forecast.shape == (50,) and np.all(np.isfinite(forecast))
    # its own linear part: an AR(0.5) ticker's forecasts follow yesterday's return
    assert np.corrcoef(forecast, newcomer.y_val)[0, 1] > 0.2
    # the ensemble's forecast is its members' mean
    members = model.predict_members("SYN-AR50-7", newcomer.X_val)
    assert members.shape == (2, 50)
    np.testing.assert_allclose(members.mean(axis=0), forecast, rtol=1e-6, atol=1e-6)


def test_members_share_one_traced_network_and_fit_as_fresh_ones_would() -> None:
    """Every member fit runs on the process's compiled network for its architecture and seed
    (forecaster.network.Trainer): whatever ran before (other tickers, a warm start at a lower
    rate), the same fit gives the same forecasts, and each fitted member keeps weights of its
    own."""
    from forecaster import network

    prices = {s: fetch(s) for s in SYMBOLS}
    panels = [panel(s, prices[s], 250, 50) for s in SYMBOLS]
    network._trainers.clear()  # the first fit builds the trainers, as a new worker would
    first = UniverseForecaster(TINY, members=2).fit(panels)
    before = first.predict_members(SYMBOLS[0], panels[0].X_val)
    warm = [n.get_weights() for n in first.networks_]
    UniverseForecaster(TINY, members=2).fit(panels[1:], 2, start=warm, lr_factor=0.3)
    again = UniverseForecaster(TINY, members=2).fit(panels)
    np.testing.assert_array_equal(again.predict_members(SYMBOLS[0], panels[0].X_val), before)
    np.testing.assert_array_equal(first.predict_members(SYMBOLS[0], panels[0].X_val), before)
    assert len(network._trainers) == 2  # one per member seed, traced once
    assert first.networks_[0] is not again.networks_[0]


@pytest.mark.slow
def test_epoch_zero_is_every_tickers_highway_alone() -> None:
    prices = {s: fetch(s) for s in SYMBOLS}
    panels = [panel(s, prices[s], 250, 50) for s in SYMBOLS]
    model = UniverseForecaster(TINY.replace(recenter=False), members=1, feature_names=FEATURES)
    model.fit(panels, epochs=0)
    for p in panels:
        highway = fit_highway(p.X, p.y, FEATURES, "ar")
        assert highway is not None
        np.testing.assert_allclose(model.predict(p.symbol, p.X_val), highway.predict(p.X_val))


@pytest.mark.slow
def test_no_look_ahead_across_the_universe() -> None:
    """Perturbing one ticker's prices after a date leaves every ticker's forecasts up to that date
    bit-identical: no fold's network, statistic or highway saw anything after its origin."""
    universe = {s: fetch(s) for s in SYMBOLS}
    before = run_universe_backtest(universe, 7, FEATURES, TINY, CONFIG, members=1)
    cut = before.folds[1].first  # the second fold's first target date
    changed = {s: p.copy() for s, p in universe.items()}
    later = changed["SYN-RW-7"].index >= cut
    changed["SYN-RW-7"].loc[later, ["open", "high", "low", "close"]] *= 1.5
    after = run_universe_backtest(changed, 7, FEATURES, TINY, CONFIG, members=1)
    assert set(before.results) == set(SYMBOLS)
    for s in SYMBOLS:
        b, a = before.results[s], after.results[s]
        early = b.target_dates < cut
        assert early.sum() >= 50
        for method in ("model", "persistence", "drift", "median_return"):
            assert np.array_equal(b.forecasts[method][early], a.forecasts[method][early]), (
                s,
                method,
            )
    # and the perturbation did reach the later forecasts
    late = before.results["SYN-RW-7"].target_dates >= cut
    assert not np.array_equal(
        before.results["SYN-RW-7"].forecasts["model"][late],
        after.results["SYN-RW-7"].forecasts["model"][late],
    )


@pytest.mark.slow
def test_every_ticker_gets_its_own_record_and_a_short_history_joins_later() -> None:
    universe = {s: fetch(s) for s in SYMBOLS}
    universe["SYN-AR50-7"] = fetch("SYN-AR50-7", 150)  # too short for the first fold
    bt = run_universe_backtest(universe, 7, FEATURES, TINY, CONFIG, members=2)
    for s in SYMBOLS:
        summary = bt.results[s].summary
        assert summary["n_forecasts"] == 120 and summary["folds"] == 2
        assert len(summary["ensemble"]["member_dm_best_pvalues"]) == 2
    short = bt.results["SYN-AR50-7"].summary
    assert short["folds"] == 1 and short["n_forecasts"] == 60
    assert bt.n_tickers == [3, 4]


@pytest.mark.slow
def test_the_served_fit_sees_every_day_for_the_chosen_epochs() -> None:
    from forecaster.universe_backtest import fit_served

    universe = {s: fetch(s) for s in SYMBOLS}
    model, stats = fit_served(universe, 7, FEATURES, TINY, members=2, epochs=2)
    assert set(stats) == set(SYMBOLS)
    assert all(st.train_end == universe[s].index[-1].date() for s, st in stats.items())
    assert [f.epochs_run for f in model.fits_] == [2, 2] and model.n_windows_ == 3 * (360 - 7)


@pytest.mark.slow
def test_a_tickers_network_saves_and_forecasts_like_the_universe_model() -> None:
    from forecaster import artifacts
    from forecaster.model import ForecastBundle, LSTMForecaster

    prices = {s: fetch(s) for s in SYMBOLS}
    panels = [panel(s, prices[s], 250, 50) for s in SYMBOLS]
    model = UniverseForecaster(TINY, members=2, feature_names=FEATURES).fit(panels)
    p = panels[0]
    network = model.ticker_network(p.symbol)
    stats = fit_stats(prices[p.symbol], 7, FEATURES, prices[p.symbol].index[256].date())
    bundle = ForecastBundle(LSTMForecaster.from_keras(network, TINY.to_dict()), stats, 0.01, 0.9)
    loaded = artifacts.unpack(artifacts.pack(bundle))  # as stored in the database
    np.testing.assert_allclose(
        loaded.model.predict(p.X_val), model.predict(p.symbol, p.X_val), rtol=1e-5, atol=1e-5
    )
