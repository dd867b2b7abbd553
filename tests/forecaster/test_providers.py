"""Offline providers (sample, csv), the shared interface and ticker/range checks."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from forecaster.errors import (
    ConfigError,
    InvalidDateRange,
    InvalidTicker,
    ProviderError,
    UnknownProvider,
    UnknownTicker,
)
from forecaster.providers import get_provider
from forecaster.providers.base import PRICE_COLUMNS, PriceProvider, normalize_ticker
from forecaster.providers.csv import CsvProvider
from forecaster.providers.sample import SampleProvider
from forecaster.settings import Settings


@pytest.mark.parametrize("symbol", ["AAPL", "brk-b", "^GSPC", "EURUSD=X", "0700.HK", "BTC-USD"])
def test_valid_symbols(symbol: str) -> None:
    assert normalize_ticker(symbol) == symbol.upper()


@pytest.mark.parametrize("symbol", ["", "A B", "DROP TABLE", "../etc", "X" * 30, "AAPL;", "^"])
def test_malformed_symbols(symbol: str) -> None:
    with pytest.raises(InvalidTicker):
        normalize_ticker(symbol)


def test_sample_provider_serves_real_sp500_and_goog() -> None:
    provider = SampleProvider()
    assert isinstance(provider, PriceProvider)
    spx = provider.fetch("^GSPC", None, None)
    assert list(spx.columns) == list(PRICE_COLUMNS)
    assert spx.index[0].date() == date(1999, 1, 4)
    assert spx.index[-1].date() == date(2018, 12, 31)
    assert spx["close"].iloc[-1] == pytest.approx(2506.85, abs=0.01)
    goog = provider.fetch("goog", date(2013, 2, 25), date(2013, 3, 1))
    assert [d.day for d in goog.index] == [25, 26, 27, 28, 1]
    assert provider.fetch("GOOG", date(2014, 1, 1), None).empty


def test_sample_provider_errors() -> None:
    provider = SampleProvider()
    with pytest.raises(UnknownTicker):
        provider.fetch("AAPL", None, None)
    with pytest.raises(InvalidDateRange):
        provider.fetch("GOOG", date(2013, 1, 2), date(2013, 1, 1))


def test_csv_provider(tmp_path: Path) -> None:
    path = tmp_path / "ACME.csv"
    path.write_text(
        "Date,Open,High,Low,Close,Adj Close,Volume\n"
        "2021-01-04,10,11,9,10.5,10.4,100\n"
        "2021-01-05,10.5,11.5,10,11,10.9,200\n"
    )
    provider = CsvProvider(tmp_path)
    got = provider.fetch("acme", None, date(2021, 1, 4))
    assert len(got) == 1
    assert got["adj_close"].iloc[0] == pytest.approx(10.4)
    with pytest.raises(UnknownTicker):
        provider.fetch("OTHER", None, None)


def test_csv_provider_single_file_with_ticker_column(tmp_path: Path) -> None:
    path = tmp_path / "many.csv"
    path.write_text(
        "symbol,date,open,high,low,close,volume\n"
        "AAA,2021-01-04,1,2,1,1.5,10\n"
        "BBB,2021-01-04,5,6,4,5.5,20\n"
    )
    got = CsvProvider(path).fetch("BBB", None, None)
    assert got["close"].tolist() == [5.5]


def test_csv_provider_malformed(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("when,open\n2021-01-04,1\n")
    with pytest.raises(ProviderError):
        CsvProvider(path).fetch("BAD", None, None)
    with pytest.raises(ProviderError):
        CsvProvider(tmp_path / "missing.csv").fetch("BAD", None, None)


def test_get_provider() -> None:
    settings = Settings()
    assert get_provider("sample", settings).name == "sample"
    assert get_provider("yfinance", settings).name == "yfinance"
    with pytest.raises(UnknownProvider):
        get_provider("bloomberg", settings)
    with pytest.raises(ConfigError):
        get_provider("csv", settings)


def test_synthetic_provider_is_deterministic_and_has_known_processes() -> None:
    import numpy as np
    import pandas as pd

    from forecaster.errors import UnknownTicker
    from forecaster.providers.synthetic import DAYS, parse
    from forecaster.settings import Settings
    from forecaster.validation import validate_prices

    provider = get_provider("synthetic", Settings())
    ar = provider.fetch("SYN-AR30-1", None, None)
    assert len(ar) == DAYS and str(ar.index[-1].date()) == "2018-12-31"
    assert validate_prices(ar).ok  # plausible OHLCV: every rule holds
    pd.testing.assert_frame_equal(ar, provider.fetch("syn-ar30-1", None, None))
    assert not provider.fetch("SYN-AR30-2", None, None)["close"].equals(ar["close"])
    returns = np.diff(np.log(ar["close"].to_numpy()))
    assert np.corrcoef(returns[:-1], returns[1:])[0, 1] == pytest.approx(0.3, abs=0.05)
    rw = np.diff(np.log(provider.fetch("SYN-RW-1", None, None)["close"].to_numpy()))
    assert abs(np.corrcoef(rw[:-1], rw[1:])[0, 1]) < 0.05
    assert parse("SYN-AR5-3").phi == 0.05 and parse("SYN-RW-3").phi == 0.0
    part = provider.fetch("SYN-RW-1", date(2018, 12, 1), date(2018, 12, 31))
    assert part.index[0] >= pd.Timestamp("2018-12-01") and len(part) == 21
    for bad in ("SYN-XX-1", "SYN-AR300-1", "SYN-RW"):
        with pytest.raises(UnknownTicker, match="synthetic symbols"):
            provider.fetch(bad, None, None)
