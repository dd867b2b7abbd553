"""What the forecast document says about a backtest: the served method's coverage, p-values at
full precision, an interval that says whether its coverage was measured, and gaps."""

from __future__ import annotations

import copy
from datetime import date, datetime

import numpy as np
import pandas as pd
import pytest

from forecaster import documents, storage
from forecaster.backtest import BacktestConfig, FoldForecast, assemble_backtest, plan_folds

BACKTEST = {
    "scheme": "rolling-origin",
    "folds": 4,
    "n_forecasts": 500,
    "start": "2017-01-03",
    "end": "2018-12-31",
    "mae": 6.1,
    "persistence_mae": 6.5,
    "mae_ratio": 0.94,
    "best_baseline": "drift",
    "best_baseline_mae": 6.4,
    "best_baseline_mae_ratio": 0.95,
    "dm_stat": -5.9,
    "dm_pvalue": 2.3e-9,
    "dm_best_stat": -5.1,
    "dm_best_pvalue": 4.56789123e-7,
    "coverage": 0.869,
    "coverage_by_method": {"model": 0.869, "persistence": 0.9, "drift": 0.88},
    "nominal_coverage": 0.9,
    "gaps": {"count": 1, "largest_days": 93, "limit_days": 7},
    "metrics": {"model": {"mae": 6.1}, "drift": {"mae": 6.4}, "persistence": {"mae": 6.5}},
}


def version(method: str, backtest: dict | None) -> storage.ModelVersion:
    return storage.ModelVersion(
        version=1,
        status="champion",
        method=method,
        method_reason="why",
        trained_at=datetime(2019, 1, 2),
        test_start=date(2017, 1, 3),
        test_end=date(2018, 12, 31),
        metrics={} if backtest is None else {"backtest": backtest},
    )


def prediction(method: str) -> storage.Prediction:
    return storage.Prediction(
        as_of_date=date(2018, 12, 31),
        target_date=date(2019, 1, 2),
        predicted_close=101.0,
        lower=98.0,
        upper=104.0,
        coverage=0.9,
        last_close=100.0,
        method=method,
        method_reason="why",
        created_at=datetime(2019, 1, 2),
    )


def test_p_values_keep_their_precision() -> None:
    bt = documents.backtest(version("lstm", BACKTEST))
    assert bt is not None
    assert bt.dm_pvalue == 2.3e-9 and bt.dm_best_pvalue == 4.56789123e-7  # not rounded to 0


@pytest.mark.parametrize(("method", "coverage"), [("drift", 0.88), ("lstm", 0.869)])
def test_coverage_is_the_served_methods(method: str, coverage: float) -> None:
    bt = documents.backtest(version(method, BACKTEST))
    assert bt is not None and bt.coverage == coverage
    assert bt.coverage_by_method == {"lstm": 0.869, "persistence": 0.9, "drift": 0.88}
    assert bt.gaps == 1 and bt.largest_gap_days == 93


def test_an_interval_says_whether_its_coverage_was_measured() -> None:
    one_fold = copy.deepcopy(BACKTEST)
    one_fold["coverage_by_method"] = {"model": None, "persistence": None, "drift": None}
    one_fold["coverage"] = None
    body = documents.forecast("X", prediction("drift"), version("drift", one_fold))
    assert body.interval.calibrated is False and body.model.backtest is not None
    assert body.model.backtest.coverage is None
    body = documents.forecast("X", prediction("drift"), version("drift", BACKTEST))
    assert body.interval.calibrated is True
    legacy = documents.forecast("X", prediction("drift"), version("drift", None))
    assert legacy.interval.calibrated is False  # no backtest: nothing was measured


def test_a_backtest_counts_the_breaks_it_forecasts_across() -> None:
    days = pd.bdate_range("2015-01-01", periods=900)
    days = days[:700].append(days[700:] + pd.Timedelta(days=91))  # a break of about 3 months
    close = 100 * np.exp(np.cumsum(np.random.default_rng(0).normal(0, 0.01, len(days))))
    prices = pd.DataFrame(
        {"open": close, "high": close, "low": close, "close": close, "volume": 1e6}, index=days
    )
    window = 7
    config = BacktestConfig(days=500, refit_every=125)
    folds = plan_folds(len(prices) - window, config.days, config.refit_every)
    outputs = [FoldForecast(np.zeros(b - a), 1, 1, 0.0) for a, b in folds]
    result = assemble_backtest(prices, window, folds, outputs, config)
    gap = (days[700] - days[699]).days
    assert gap > 90
    assert result.summary["gaps"] == {"count": 1, "largest_days": gap, "limit_days": 7}
