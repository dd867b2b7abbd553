"""Rolling-origin backtest and refit-on-all: every forecast from a model that saw nothing after
its origin; the served model sees every day; quiet nights reuse the backtest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sqlalchemy.orm import Session, sessionmaker

from forecaster import artifacts
from forecaster.backtest import BacktestConfig, plan_folds, run_backtest
from forecaster.errors import NotDaily
from forecaster.params import ModelParams
from forecaster.providers.synthetic import SyntheticProvider
from forecaster.settings import Settings
from forecaster.training import reusable_backtest, train, training_config

TINY = ModelParams(units=(4, 2), epochs=2, batch_size=64, patience=1)
CONFIG = BacktestConfig(days=120, refit_every=60)
SETTINGS = Settings().replace(model=TINY, backtest_days=120, backtest_refit_every=60)


@pytest.fixture(scope="module")
def prices() -> pd.DataFrame:
    return SyntheticProvider().fetch("SYN-AR30-9", None, None).iloc[-300:]


def test_plan_folds() -> None:
    assert plan_folds(1000, 500, 125) == [(500, 625), (625, 750), (750, 875), (875, 1000)]
    assert plan_folds(1000, 500, 200) == [(500, 700), (700, 900), (900, 1000)]
    # short history: the first fold trains on at least half of it
    assert plan_folds(200, 500, 125) == [(100, 200)]


@pytest.mark.slow
def test_backtest_forecasts_never_see_after_their_origin(prices: pd.DataFrame) -> None:
    before = run_backtest(prices, 7, SETTINGS.features, TINY, CONFIG)
    assert before.n == 120 and len(before.folds) == 2
    # Perturb a day inside the first fold's test window (and everything after it).
    first_target = int(np.searchsorted(prices.index, before.target_dates[0]))
    day = first_target + 30
    tampered = prices.copy()
    tampered.iloc[day:, :4] *= 1.5
    after = run_backtest(tampered, 7, SETTINGS.features, TINY, CONFIG)
    # Forecasts made at origins before the perturbed day are identical, for every method.
    origin_rows = np.searchsorted(prices.index, before.target_dates) - 1
    unchanged = origin_rows < day
    assert unchanged.sum() == 31
    for method in before.forecasts:
        np.testing.assert_array_equal(
            before.forecasts[method][unchanged], after.forecasts[method][unchanged]
        )
    # ... and the later ones did change: the perturbation reached them.
    assert not np.allclose(
        before.forecasts["model"][~unchanged], after.forecasts["model"][~unchanged]
    )


@pytest.mark.slow
def test_refit_on_all_uses_the_last_day(prices: pd.DataFrame) -> None:
    a = train(prices, SETTINGS, "SYN")
    assert a.trained_through == prices.index[-1].date()
    tampered = prices.copy()
    tampered.iloc[-1, :4] *= 1.03  # only the last day's bar
    b = train(tampered, SETTINGS, "SYN")
    assert a.final_epochs == b.final_epochs  # chosen by the backtest, which did not fit that day
    weights_a = a.bundle.model.model_.get_weights()
    weights_b = b.bundle.model.model_.get_weights()
    assert any(not np.array_equal(x, y) for x, y in zip(weights_a, weights_b, strict=True))


@pytest.mark.slow
def test_quiet_night_reuses_the_backtest(prices: pd.DataFrame) -> None:
    settings = SETTINGS.replace(backtest_every_days=5)
    first = train(prices.iloc[:-3], settings, "SYN")
    previous = {"config": first.config, "backtest": first.backtest, "serving": first.serving}
    quiet = train(prices, settings, "SYN", previous=previous)  # 3 new days
    assert quiet.backtest_reused and quiet.backtest == first.backtest
    assert quiet.trained_through == prices.index[-1].date()
    assert quiet.final_epochs == first.final_epochs
    assert quiet.warm_from is None  # no artifact to start from: a refit from scratch
    assert quiet.fit_epochs == first.final_epochs
    # a changed configuration or too many new days mean a full backtest
    changed = settings.replace(model=TINY.replace(seed=7))
    assert reusable_backtest(previous, training_config(changed), prices, 5) is None
    assert reusable_backtest(previous, first.config, prices, 2) is None
    assert reusable_backtest(previous, first.config, prices, 0) is None
    # a revised day before the backtest's end (a re-backfill after a split) forces a new one
    revised = prices.copy()
    revised.iloc[10, :4] *= 0.5
    assert reusable_backtest(previous, first.config, revised, 5) is None
    # the quiet night's version saw 3 more days than the backtest: a corrected row among them
    # (after the backtest's end) forces a full backtest too, a change to a newer day does not
    again = {"config": quiet.config, "backtest": quiet.backtest, "serving": quiet.serving}
    more = pd.concat([prices, prices.iloc[-1:].set_axis([prices.index[-1] + pd.Timedelta(days=1)])])
    assert reusable_backtest(again, first.config, more, 5) is not None
    corrected = more.copy()
    corrected.iloc[-3, 3] *= 1.01  # a close the quiet night trained on, after the backtest's end
    assert corrected.index[-3] > pd.Timestamp(quiet.backtest["end"])
    assert reusable_backtest(again, first.config, corrected, 5) is None
    newest = more.copy()
    newest.iloc[-1, 3] *= 1.01  # the day no version has seen yet
    assert reusable_backtest(again, first.config, newest, 5) is not None


@pytest.mark.slow
def test_quiet_night_warm_starts_from_the_newest_network(prices: pd.DataFrame) -> None:
    settings = SETTINGS.replace(backtest_every_days=5, warm_start_epochs=2)
    first = train(prices.iloc[:-1], settings, "SYN")
    previous = {
        "config": first.config,
        "backtest": first.backtest,
        "serving": first.serving,
        "version": 1,
        "artifact": artifacts.pack(first.bundle),
    }
    quiet = train(prices, settings, "SYN", previous=previous)  # one new day
    assert quiet.backtest_reused and quiet.warm_from == 1
    assert quiet.fit_epochs == 2 and quiet.final_epochs == first.final_epochs
    assert quiet.serving["warm_started_from"] == 1
    assert quiet.serving["final_epochs"] == first.final_epochs  # a later cold refit's count
    assert quiet.trained_through == prices.index[-1].date()
    assert quiet.bundle.stats == first.bundle.stats  # statistics of the network it continued
    before = first.bundle.model.model_.get_weights()
    after = quiet.bundle.model.model_.get_weights()
    assert any(not np.array_equal(x, y) for x, y in zip(before, after, strict=True))
    # no artifact (pruned, corrupt) or warm starts off: a refit from scratch, never a failure
    corrupt = artifacts.Artifact(b"not a zip file", previous["artifact"].meta)
    for gone in (None, corrupt):
        assert (
            train(prices, settings, "SYN", previous={**previous, "artifact": gone}).warm_from
            is None
        )
    cold = train(prices, settings.replace(warm_start_epochs=0), "SYN", previous=previous)
    assert cold.warm_from is None and cold.fit_epochs == first.final_epochs


def test_monthly_bars_are_refused_before_training() -> None:
    from backtesting.test import BTCUSD

    from forecaster.providers.base import canonicalize

    monthly = canonicalize(BTCUSD)
    with pytest.raises(NotDaily, match=r"not daily \(median spacing 3\d calendar days"):
        train(monthly, SETTINGS, "BTCUSD")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_monthly_csv_is_refused_with_one_line_and_nothing_stored(
    env: dict[str, str], tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    from backtesting.test import BTCUSD

    from cli.main import cli
    from forecaster import storage

    path = tmp_path / "BTCUSD.csv"
    BTCUSD.rename_axis("Date").to_csv(path)
    result = CliRunner().invoke(
        cli, ["backfill", "BTCUSD", "--provider", "csv", "--csv", str(path)]
    )
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert errors == [
        "BTCUSD: error: BTCUSD: the bars are not daily (median spacing 31 calendar days; weekly "
        "or monthly data?): stockcast forecasts the next trading day from daily bars"
    ]
    assert "Traceback" not in result.output
    with sessions() as s:
        assert storage.get_ticker(s, "BTCUSD") is None  # nothing stored, so nothing can train
    result = CliRunner().invoke(cli, ["train", "BTCUSD"])
    assert result.exit_code == 1 and "unknown ticker" in result.stderr
