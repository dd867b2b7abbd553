"""Windows: shapes, values, and proof that nothing after the training end is looked at."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from forecaster.errors import InsufficientHistory
from forecaster.providers.sample import SampleProvider
from forecaster.settings import DEFAULT_FEATURES
from forecaster.windows import (
    FeatureStats,
    check_history,
    fit_stats,
    latest_window,
    make_windows,
    min_rows,
)

N_TRAIN = 300  # training samples: the split forecaster.backtest.fit_upto makes, by target date


@pytest.fixture(scope="module")
def prices() -> pd.DataFrame:
    return SampleProvider().fetch("GOOG", date(2011, 1, 1), date(2013, 3, 1))


def train_end(prices: pd.DataFrame, window: int = 7) -> date:
    """The target date of the last training sample (as fit_upto computes it)."""
    return prices.index[window - 1 + N_TRAIN].date()


def test_shapes_and_targets(prices: pd.DataFrame) -> None:
    stats = fit_stats(prices, 7, DEFAULT_FEATURES, train_end(prices))
    ws = make_windows(prices, stats)
    assert ws.X.shape == (len(prices) - 7, 7, 5)
    assert ws.X.dtype == np.float32
    assert len(ws) == len(ws.y) == len(ws.target_dates) == len(prices) - 7
    # sample 0: window = rows 0..6, origin row 6, target row 7
    assert ws.origin_dates[0] == prices.index[6]
    assert ws.target_dates[0] == prices.index[7]
    expected = np.log(prices["close"].iloc[7] / prices["close"].iloc[6]) / stats.return_std
    assert ws.y[0] == pytest.approx(expected, rel=1e-5)
    # the close feature of the window's last day is 0: everything is relative to it
    assert np.allclose(ws.X[:, -1, DEFAULT_FEATURES.index("close")], 0.0)
    assert ws.next_close[-1] == prices["close"].iloc[-1]


def test_features_are_level_free(prices: pd.DataFrame) -> None:
    """Multiplying every price by 10 leaves the windows unchanged (2018 looks like 1999)."""
    stats = fit_stats(prices, 7, DEFAULT_FEATURES, prices.index[300].date())
    scaled = prices.copy()
    for col in ("open", "high", "low", "close"):
        scaled[col] *= 10
    a, b = make_windows(prices, stats), make_windows(scaled, stats)
    np.testing.assert_allclose(a.X, b.X, atol=1e-5)
    np.testing.assert_allclose(a.y, b.y, atol=1e-5)


def test_hand_made_window_values() -> None:
    idx = pd.bdate_range("2020-01-01", periods=4)
    df = pd.DataFrame(
        {
            "open": [1.0, 2.0, 4.0, 8.0],
            "high": [1.0, 2.0, 4.0, 8.0],
            "low": [1.0, 2.0, 4.0, 8.0],
            "close": [1.0, 2.0, 4.0, 8.0],
            "adj_close": np.nan,
            "volume": [np.e - 1, np.e - 1, np.e - 1, np.e - 1],
        },
        index=idx,
    )
    stats = FeatureStats(
        window=2,
        features=("close", "volume"),
        return_std=1.0,
        volume_std=1.0,
        train_end=idx[2].date(),
    )
    ws = make_windows(df, stats)
    assert len(ws) == 2
    np.testing.assert_allclose(ws.X[0, :, 0], [np.log(0.5), 0.0], rtol=1e-6)
    np.testing.assert_allclose(ws.X[0, :, 1], [0.0, 0.0], atol=1e-7)
    np.testing.assert_allclose(ws.y, [np.log(2.0), np.log(2.0)], rtol=1e-6)
    X, last_close, as_of = latest_window(df, stats)
    assert X.shape == (1, 2, 2) and last_close == 8.0 and as_of == idx[-1].date()


def test_no_look_ahead(prices: pd.DataFrame) -> None:
    """Changing any price after the training end leaves the statistics and training samples unchanged."""
    end = train_end(prices)
    stats = fit_stats(prices, 7, DEFAULT_FEATURES, end)
    ws = make_windows(prices, stats)
    tampered = prices.copy()
    after = tampered.index > pd.Timestamp(end)
    rng = np.random.default_rng(0)
    for col in ("open", "high", "low", "close", "volume"):
        tampered.loc[after, col] *= rng.uniform(0.5, 3.0, after.sum())
    stats2 = fit_stats(tampered, 7, DEFAULT_FEATURES, end)
    ws2 = make_windows(tampered, stats2)
    assert stats2 == stats
    np.testing.assert_array_equal(ws2.X[:N_TRAIN], ws.X[:N_TRAIN])
    np.testing.assert_array_equal(ws2.y[:N_TRAIN], ws.y[:N_TRAIN])
    assert ws.target_dates[N_TRAIN - 1] == pd.Timestamp(end)
    # and the later samples do change: the tampering was real
    assert not np.array_equal(ws2.y[N_TRAIN:], ws.y[N_TRAIN:])


def test_too_little_history(prices: pd.DataFrame) -> None:
    check_history(prices.iloc[: min_rows(7)], 7, "GOOG")
    with pytest.raises(InsufficientHistory, match=f"at least {min_rows(7)}"):
        check_history(prices.iloc[: min_rows(7) - 1], 7, "GOOG")
