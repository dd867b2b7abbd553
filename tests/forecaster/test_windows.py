"""Windows: shapes, values, the chronological split, and proof that nothing looks ahead."""

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
    chronological_split,
    fit_stats,
    latest_window,
    make_windows,
    min_rows,
    prepare,
)


@pytest.fixture(scope="module")
def prices() -> pd.DataFrame:
    return SampleProvider().fetch("GOOG", date(2011, 1, 1), date(2013, 3, 1))


def test_shapes_and_targets(prices: pd.DataFrame) -> None:
    ws, split, stats = prepare(prices, 7, DEFAULT_FEATURES, 0.15, 0.15)
    assert ws.X.shape == (len(prices) - 7, 7, 5)
    assert ws.X.dtype == np.float32
    assert split.n_train + split.n_val + split.n_test == len(ws)
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
    """Changing any price after the split date leaves the statistics and training samples unchanged."""
    ws, split, stats = prepare(prices, 7, DEFAULT_FEATURES, 0.15, 0.15)
    tampered = prices.copy()
    after = tampered.index > pd.Timestamp(stats.train_end)
    rng = np.random.default_rng(0)
    for col in ("open", "high", "low", "close", "volume"):
        tampered.loc[after, col] *= rng.uniform(0.5, 3.0, after.sum())
    ws2, split2, stats2 = prepare(tampered, 7, DEFAULT_FEATURES, 0.15, 0.15)
    assert stats2 == stats
    assert split2 == split
    np.testing.assert_array_equal(ws2.X[: split.n_train], ws.X[: split.n_train])
    np.testing.assert_array_equal(ws2.y[: split.n_train], ws.y[: split.n_train])
    assert ws.target_dates[split.n_train - 1] == pd.Timestamp(stats.train_end)
    # and the validation/test samples do change: the tampering was real
    assert not np.array_equal(ws2.y[split.val_end :], ws.y[split.val_end :])


def test_split_is_chronological() -> None:
    split = chronological_split(1000, 0.15, 0.15)
    assert (split.n_train, split.n_val, split.n_test) == (700, 150, 150)


def test_too_little_history(prices: pd.DataFrame) -> None:
    with pytest.raises(InsufficientHistory, match=f"at least {min_rows(7)}"):
        prepare(prices.iloc[: min_rows(7) - 1], 7, DEFAULT_FEATURES, 0.15, 0.15, "GOOG")
