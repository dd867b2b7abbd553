"""Metrics and baselines on hand-made numbers; baselines never use the future."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecaster.evaluation import (
    baseline_forecasts,
    conformal_halfwidth,
    evaluate_forecasts,
    metrics,
)


def test_metrics_exact() -> None:
    m = metrics(np.array([10.0, 12.0]), np.array([11.0, 11.0]), np.array([10.5, 11.5]))
    assert m["mae"] == pytest.approx(1.0)
    assert m["rmse"] == pytest.approx(1.0)
    assert m["mape"] == pytest.approx((0.1 + 1 / 12) / 2 * 100)
    # day 1: predicted up (11 > 10.5), actual down (10 < 10.5) -> wrong; day 2: down vs up -> wrong
    assert m["directional_accuracy"] == 0.0
    assert m["n"] == 2


def test_baselines_exact() -> None:
    close = np.array([100.0, 110.0, 121.0, 133.1])
    origin = np.array([1, 2])
    b = baseline_forecasts(close, origin, window=2, drift_lookback=2)
    np.testing.assert_allclose(b["persistence"], [110.0, 121.0])
    np.testing.assert_allclose(b["moving_average"], [105.0, 115.5])
    np.testing.assert_allclose(b["drift"], [121.0, 133.1])  # constant 10% growth continues


def test_baselines_never_see_the_future() -> None:
    close = np.linspace(100, 200, 50)
    origin = np.arange(10, 40)
    before = baseline_forecasts(close, origin, window=7)
    changed = close.copy()
    changed[41:] *= 5  # everything after the last origin's target
    changed_next = close.copy()
    changed_next[11:] *= 5  # everything after the first origin
    after = baseline_forecasts(changed, origin, window=7)
    for name in before:
        np.testing.assert_array_equal(before[name], after[name])
        first = baseline_forecasts(changed_next, origin[:1], window=7)[name]
        assert first[0] == before[name][0]


def test_report_ratio_and_persistence_direction() -> None:
    close = np.array([10.0, 11.0, 10.0, 12.0, 13.0])
    origin = np.array([1, 2, 3])
    dates = pd.bdate_range("2020-01-01", periods=5)[2:]
    report = evaluate_forecasts(
        target_dates=dates,
        actual=close[origin + 1],
        last_close=close[origin],
        model_forecast=close[origin + 1],  # a perfect model
        close=close,
        origin_index=origin,
        window=2,
    )
    assert report.metrics["model"]["mae"] == 0.0
    assert report.mae_ratio == 0.0
    assert report.metrics["persistence"]["directional_accuracy"] is None
    assert report.metrics["model"]["directional_accuracy"] == 1.0
    assert report.to_dict()["n"] == 3


def test_conformal_quantile() -> None:
    residuals = np.arange(1, 11, dtype=float)  # 1..10
    assert conformal_halfwidth(residuals, 0.9) == 10.0  # ceil(11 * 0.9) = 10th smallest
    assert conformal_halfwidth(residuals, 0.5) == 6.0  # ceil(5.5) = 6th
    with pytest.raises(ValueError):
        conformal_halfwidth(np.array([]), 0.9)


def test_diebold_mariano_matches_a_hand_computation() -> None:
    from scipy import stats

    from forecaster.evaluation import diebold_mariano

    a = np.array([1.0, -2.0, 3.0, -1.0, 2.0, 0.5])
    b = np.array([2.0, 1.0, -1.0, 3.0, -2.5, 1.0])
    # d = |a| - |b| = [-1, 1, 2, -2, -0.5, -0.5], mean -1/6; centred c = d + 1/6
    # gamma0 = sum(c^2)/6 = (372/36)/6; gamma1 = sum(c_t c_t-1)/6 = (-61/36)/6
    # lrv (1 lag, Bartlett weight 1/2) = gamma0 + 2 * 0.5 * gamma1
    gamma0, gamma1 = 372 / 36 / 6, -61 / 36 / 6
    lrv = gamma0 + gamma1
    expected = (-1 / 6) / np.sqrt(lrv / 6) * np.sqrt(5 / 6)  # HLN factor for h = 1
    result = diebold_mariano(a, b, lags=1)
    assert result.stat == pytest.approx(expected, rel=1e-12)
    assert result.stat == pytest.approx(-0.3105849682583473)
    assert result.pvalue == pytest.approx(stats.t.cdf(expected, df=5))
    assert result.mean_diff == pytest.approx(-1 / 6)
    assert (result.n, result.lags) == (6, 1)


def test_diebold_mariano_direction_and_automatic_lags() -> None:
    from forecaster.evaluation import diebold_mariano, newey_west_lags

    rng = np.random.default_rng(0)
    small = rng.normal(0, 1, 500)
    big = small * 1.5 + rng.normal(0, 0.1, 500)
    better = diebold_mariano(small, big)
    assert better.stat < -2 and better.pvalue < 0.05 and better.lags == 5
    worse = diebold_mariano(big, small)
    assert worse.stat == pytest.approx(-better.stat) and worse.pvalue > 0.95
    same = diebold_mariano(small, small)
    assert same.stat == 0.0 and same.pvalue == pytest.approx(0.5)
    assert newey_west_lags(500) == 5 and newey_west_lags(100) == 4
    with pytest.raises(ValueError):
        diebold_mariano(small[:2], big[:2])


def test_median_return_baseline_and_next_day_baselines() -> None:
    from forecaster.evaluation import baseline_next_log_return

    close = np.array([100.0, 110.0, 121.0, 133.1])
    b = baseline_forecasts(close, np.array([1, 2]), window=2, median_return=0.01)
    np.testing.assert_allclose(b["median_return"], [110.0 * np.exp(0.01), 121.0 * np.exp(0.01)])
    assert baseline_next_log_return("persistence", close, 0.5) == 0.0
    assert baseline_next_log_return("median_return", close, 0.5) == 0.5
    assert baseline_next_log_return("drift", close, 0.5, drift_lookback=2) == pytest.approx(
        np.log(1.1)
    )
    with pytest.raises(ValueError):
        baseline_next_log_return("lstm", close, 0.0)
