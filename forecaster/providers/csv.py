"""Load a user's own OHLCV CSV file: one file per ticker, or one file with a `ticker` column.

Columns are matched case-insensitively: date, open, high, low, close, volume, optional
adj close / adj_close and ticker/symbol.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd

from forecaster.errors import ProviderError, UnknownTicker
from forecaster.providers.base import canonicalize, check_range, normalize_ticker


class CsvProvider:
    name = "csv"
    adjusted = False

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def _files_for(self, symbol: str) -> list[Path]:
        if self.path.is_dir():
            stem = symbol.replace("^", "")
            return [p for p in sorted(self.path.glob("*.csv")) if p.stem.upper() in (symbol, stem)]
        return [self.path]

    def fetch(self, ticker: str, start: date | None, end: date | None) -> pd.DataFrame:
        symbol = normalize_ticker(ticker)
        check_range(start, end)
        if not self.path.exists():
            raise ProviderError(f"CSV path {self.path} does not exist")
        files = self._files_for(symbol)
        if not files:
            raise UnknownTicker(symbol, f"no CSV file for it in {self.path}")
        try:
            raw = pd.read_csv(files[0])
        except (OSError, ValueError, pd.errors.ParserError) as exc:
            raise ProviderError(f"cannot read {files[0]}: {exc}") from exc
        raw.columns = [str(c).strip().lower().replace(" ", "_") for c in raw.columns]
        ticker_col = next((c for c in ("ticker", "symbol") if c in raw.columns), None)
        if ticker_col is not None:
            raw = raw.loc[raw[ticker_col].astype(str).str.upper() == symbol]
            if raw.empty:
                raise UnknownTicker(symbol, f"{files[0]} has no rows for it")
            raw = raw.drop(columns=[ticker_col])
        date_col = next((c for c in ("date", "datetime", "timestamp") if c in raw.columns), None)
        if date_col is None:
            raise ProviderError(f"{files[0]} has no date column")
        try:
            raw.index = pd.to_datetime(raw.pop(date_col), utc=False)
        except (ValueError, TypeError) as exc:
            raise ProviderError(f"{files[0]}: unparseable dates ({exc})") from exc
        try:
            frame = canonicalize(raw)
        except ValueError as exc:
            raise ProviderError(f"{files[0]}: non-numeric price data ({exc})") from exc
        if start is not None:
            frame = frame.loc[frame.index >= pd.Timestamp(start)]
        if end is not None:
            frame = frame.loc[frame.index <= pd.Timestamp(end)]
        return frame
