"""Offline provider: real daily OHLCV that ships inside PyPI packages, served as ordinary tickers.

- ^GSPC: S&P 500 index 1999-01-04 .. 2018-12-31, from `arch.data.sp500` (has Adj Close).
- GOOG: Alphabet 2004-08-19 .. 2013-03-01, from `backtesting.test.GOOG`.
- ^IXIC: NASDAQ Composite index 1999-01-04 .. 2018-12-31, from `arch.data.nasdaq`. Model
  choices are tuned on its history up to 2016-12-30 only (bench/tuning.py), never on the
  periods the README reports for ^GSPC and GOOG.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from functools import cache

import pandas as pd

from forecaster.errors import UnknownTicker
from forecaster.providers.base import canonicalize, check_range, clip_dates, normalize_ticker


def _sp500() -> pd.DataFrame:
    from arch.data import sp500

    return sp500.load()


def _nasdaq() -> pd.DataFrame:
    from arch.data import nasdaq

    return nasdaq.load()


def _goog() -> pd.DataFrame:
    from backtesting.test import GOOG

    return GOOG.copy()


_LOADERS: dict[str, tuple[Callable[[], pd.DataFrame], str]] = {
    "^GSPC": (_sp500, "S&P 500 index (arch.data.sp500)"),
    "GOOG": (_goog, "Alphabet Inc. (backtesting.test.GOOG)"),
    "^IXIC": (_nasdaq, "NASDAQ Composite index (arch.data.nasdaq)"),
}


@cache
def _load(symbol: str) -> pd.DataFrame:
    loader, _ = _LOADERS[symbol]
    return canonicalize(loader())


class SampleProvider:
    """Real historical data with no network: the embedded default."""

    name = "sample"
    adjusted = False  # raw OHLC as published; ^GSPC also carries Adj Close

    @staticmethod
    def symbols() -> dict[str, str]:
        return {symbol: description for symbol, (_, description) in _LOADERS.items()}

    def fetch(self, ticker: str, start: date | None, end: date | None) -> pd.DataFrame:
        symbol = normalize_ticker(ticker)
        check_range(start, end)
        if symbol not in _LOADERS:
            raise UnknownTicker(
                symbol, f"the sample provider has only {', '.join(sorted(_LOADERS))}"
            )
        frame = _load(symbol)
        return clip_dates(frame, start, end)
