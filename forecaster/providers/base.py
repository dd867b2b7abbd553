"""The one small interface every market-data source implements, and the canonical frame shape."""

from __future__ import annotations

import re
from datetime import date
from typing import Protocol, runtime_checkable

import pandas as pd

from forecaster.errors import InvalidDateRange, InvalidTicker

# The daily price columns, named here once: the prices (OHLC), what every source must give
# (OHLCV), and the canonical columns every provider returns and the database stores (adj_close
# is NaN where a source has none).
OHLC: tuple[str, ...] = ("open", "high", "low", "close")
OHLCV: tuple[str, ...] = (*OHLC, "volume")
PRICE_COLUMNS: tuple[str, ...] = (*OHLC, "adj_close", "volume")

# Yahoo-style symbols: AAPL, BRK-B, ^GSPC, EURUSD=X, BTC-USD, 0700.HK. Checked before any I/O.
TICKER_PATTERN = re.compile(r"^\^?[A-Z0-9][A-Z0-9.\-=]{0,19}$")
PROVIDERS = ("sample", "synthetic", "yfinance", "csv")  # the names get_provider() knows


def normalize_ticker(ticker: str) -> str:
    """Upper-case and check a symbol; raise InvalidTicker for anything else."""
    symbol = ticker.strip().upper()
    if not TICKER_PATTERN.fullmatch(symbol):
        raise InvalidTicker(ticker)
    return symbol


def check_range(start: date | None, end: date | None) -> None:
    if start is not None and end is not None and end < start:
        raise InvalidDateRange(f"end {end.isoformat()} is before start {start.isoformat()}")


def clip_dates(frame: pd.DataFrame, start: date | None, end: date | None) -> pd.DataFrame:
    """The rows of a dated frame from `start` to `end`, both inclusive (None: unbounded); a copy."""
    if start is not None:
        frame = frame.loc[frame.index >= pd.Timestamp(start)]
    if end is not None:
        frame = frame.loc[frame.index <= pd.Timestamp(end)]
    return frame.copy()


def empty_frame() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype="float64") for c in PRICE_COLUMNS})
    frame.index = pd.DatetimeIndex([], name="date").as_unit("ns")
    return frame


def canonicalize(frame: pd.DataFrame) -> pd.DataFrame:
    """Lower-case/rename columns, make the index tz-naive dates named `date`, keep PRICE_COLUMNS.

    Rows are neither sorted nor de-duplicated here: validation reports those problems.
    """
    renamed = frame.rename(columns=lambda c: str(c).strip().lower().replace(" ", "_"))
    missing = [c for c in OHLCV if c not in renamed.columns]
    if missing:
        from forecaster.errors import ProviderError

        raise ProviderError(f"price data is missing columns: {', '.join(missing)}")
    if "adj_close" not in renamed.columns:
        renamed["adj_close"] = float("nan")
    index = pd.DatetimeIndex(pd.to_datetime(renamed.index))
    if index.tz is not None:
        # A daily bar belongs to the exchange's local calendar day: drop the zone, keep the date.
        index = index.tz_localize(None)
    out = renamed.loc[:, list(PRICE_COLUMNS)].astype("float64")
    out.index = index.normalize().as_unit("ns").rename("date")
    return out


@runtime_checkable
class PriceProvider(Protocol):
    """fetch(ticker, start, end) -> canonical frame of daily bars, start and end inclusive.

    `adjusted` records whether OHLC are split/dividend adjusted, and is stored with every row.
    An empty frame means "no bars in that range"; an unknown symbol raises UnknownTicker.
    """

    name: str
    adjusted: bool

    def fetch(self, ticker: str, start: date | None, end: date | None) -> pd.DataFrame: ...
