"""Sliding windows of `window` trading days x features -> next-day close, without look-ahead.

Representation (level-free, so a model fit on 1999-2012 still works at 2018 prices):
- open/high/low/close: log(price / last close of the window), divided by the training std of
  daily log returns;
- volume: log1p(volume) minus the window's mean log1p(volume), divided by its training std;
- target: log(close[t+1] / close[t]) divided by the training std of daily log returns.

Callers split chronologically by *target date* (forecaster.backtest.fit_upto): every statistic in
FeatureStats is fit on rows dated up to the last training target date only (fit_stats' train_end).
This module is pure: no database, no network, no Keras.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from forecaster.errors import InsufficientHistory

MIN_TRAIN, MIN_VAL, MIN_TEST = 40, 10, 10


@dataclass(frozen=True)
class FeatureStats:
    """Everything fitted on the training part; JSON-serialisable for the model artifact."""

    window: int
    features: tuple[str, ...]
    return_std: float  # std of daily log returns, training rows only
    volume_std: float  # std of window-relative log volume, training rows only
    train_end: date  # last training target date: nothing after it was looked at

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["features"] = list(self.features)
        d["train_end"] = self.train_end.isoformat()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureStats:
        return cls(
            window=int(d["window"]),
            features=tuple(d["features"]),
            return_std=float(d["return_std"]),
            volume_std=float(d["volume_std"]),
            train_end=date.fromisoformat(d["train_end"]),
        )


@dataclass(frozen=True)
class WindowSet:
    """Samples; origin = last day of the window (forecast made at its close), target = next day."""

    X: np.ndarray  # (n, window, n_features) float32
    y: np.ndarray  # (n,) scaled next-day log return
    origin_dates: pd.DatetimeIndex
    target_dates: pd.DatetimeIndex
    last_close: np.ndarray  # close at origin
    next_close: np.ndarray  # close at target (the truth)
    origin_index: np.ndarray  # row index of the origin in the price frame

    def __len__(self) -> int:
        return len(self.y)

    def part(self, start: int, stop: int) -> WindowSet:
        s = slice(start, stop)
        return WindowSet(
            self.X[s],
            self.y[s],
            self.origin_dates[s],
            self.target_dates[s],
            self.last_close[s],
            self.next_close[s],
            self.origin_index[s],
        )


def min_rows(window: int) -> int:
    return window + MIN_TRAIN + MIN_VAL + MIN_TEST


def check_history(prices: pd.DataFrame, window: int, ticker: str = "") -> None:
    need = min_rows(window)
    if len(prices) < need:
        raise InsufficientHistory(ticker or "ticker", len(prices), need)


def _log_volume_relative(volume: np.ndarray, window: int) -> np.ndarray:
    """(rows - window + 1, window): log1p(volume) minus each window's mean."""
    lv = np.log1p(np.maximum(volume, 0.0))
    win = sliding_window_view(lv, window)
    return win - win.mean(axis=1, keepdims=True)


def fit_stats(
    prices: pd.DataFrame, window: int, features: tuple[str, ...], train_end: date
) -> FeatureStats:
    """Fit every statistic on rows dated <= train_end (the last training target date)."""
    train = prices.loc[prices.index <= pd.Timestamp(train_end)]
    close = train["close"].to_numpy(dtype="float64")
    returns = np.diff(np.log(close))
    return_std = float(np.std(returns)) if len(returns) > 1 else 0.01
    volume_std = 1.0
    if "volume" in features and len(train) >= window:
        rel = _log_volume_relative(train["volume"].to_numpy(dtype="float64"), window)
        volume_std = float(np.std(rel)) or 1.0
    return FeatureStats(
        window=window,
        features=tuple(features),
        return_std=max(return_std, 1e-6),
        volume_std=max(volume_std, 1e-6),
        train_end=train_end,
    )


def _window_features(prices: pd.DataFrame, stats: FeatureStats) -> np.ndarray:
    """(rows - window + 1, window, n_features): the window ending at each row from window-1 on."""
    w = stats.window
    close = prices["close"].to_numpy(dtype="float64")
    last_close = np.log(close[w - 1 :])[:, None]  # per window
    parts = []
    for name in stats.features:
        if name == "volume":
            rel = _log_volume_relative(prices["volume"].to_numpy(dtype="float64"), w)
            parts.append(rel / stats.volume_std)
        else:
            logp = sliding_window_view(np.log(prices[name].to_numpy(dtype="float64")), w)
            parts.append((logp - last_close) / stats.return_std)
    return np.stack(parts, axis=-1).astype("float32")


def make_windows(prices: pd.DataFrame, stats: FeatureStats) -> WindowSet:
    """Every window whose next day is in `prices` (the last row has no target and is skipped)."""
    w = stats.window
    if len(prices) < w + 1:
        raise InsufficientHistory("ticker", len(prices), w + 1)
    feats = _window_features(prices, stats)[:-1]  # drop the window ending on the last row
    close = prices["close"].to_numpy(dtype="float64")
    origin = np.arange(w - 1, len(prices) - 1)
    last_close = close[origin]
    next_close = close[origin + 1]
    y = (np.log(next_close / last_close) / stats.return_std).astype("float32")
    idx = pd.DatetimeIndex(prices.index)
    return WindowSet(feats, y, idx[origin], idx[origin + 1], last_close, next_close, origin)


def latest_window(prices: pd.DataFrame, stats: FeatureStats) -> tuple[np.ndarray, float, date]:
    """The window ending on the last stored day: (X of shape (1, window, f), last close, as-of date)."""
    w = stats.window
    if len(prices) < w:
        raise InsufficientHistory("ticker", len(prices), w)
    tail = prices.iloc[-w:]
    X = _window_features(tail, stats)
    return X, float(tail["close"].iloc[-1]), tail.index[-1].date()
