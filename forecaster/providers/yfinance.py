"""Yahoo Finance through the `yfinance` library (1.x): the real network provider.

- Uses `Ticker.history` with yfinance's exceptions switched on, so an unknown symbol, a missing
  range and a rate limit arrive as typed errors instead of log lines and empty frames.
- `auto_adjust` is always passed explicitly and recorded per stored row (`adjusted`).
- `end` is inclusive here (yfinance's is exclusive); `start=None` means the full history.
- Rate limits (HTTP 429, `YFRateLimitError`) and network errors are retried with exponential
  backoff and full jitter, capped; past the retry budget they raise RateLimited / ProviderError.
- The bar of the current exchange-local day is dropped until the session has closed (a running
  day's bar is not final).
- A (Price, Ticker) MultiIndex and a timezone-aware index are both normalised.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from typing import Any

import pandas as pd

from forecaster.errors import ProviderError, RateLimited, UnknownTicker
from forecaster.providers.base import (
    OHLCV,
    canonicalize,
    check_range,
    empty_frame,
    normalize_ticker,
)
from forecaster.settings import Settings

log = logging.getLogger(__name__)

SESSION_FINAL_AFTER = dtime(16, 30)  # exchange-local time after which today's daily bar is final


def _yf_history(symbol: str, **kwargs: Any) -> pd.DataFrame:
    import yfinance as yf

    yf.config.debug.hide_exceptions = False  # raise typed errors instead of logging them
    return yf.Ticker(symbol).history(**kwargs)


def _classify(exc: BaseException) -> str:
    """rate_limit | unknown | missing | network | other, by yfinance's exception types."""
    try:
        from yfinance import exceptions as yfe
    except ImportError:  # pragma: no cover - yfinance is a dependency
        yfe = None
    if yfe is not None:
        if isinstance(exc, yfe.YFRateLimitError):
            return "rate_limit"
        if isinstance(exc, yfe.YFTzMissingError):
            return "unknown"
        if isinstance(exc, yfe.YFPricesMissingError):
            return "missing"
    text = str(exc).lower()
    if "too many requests" in text or "rate limit" in text or "429" in text:
        return "rate_limit"
    if isinstance(exc, (OSError, TimeoutError, ConnectionError)):  # curl_cffi errors are OSErrors
        return "network"
    return "other"


class YFinanceProvider:
    name = "yfinance"

    def __init__(
        self,
        *,
        auto_adjust: bool = False,
        max_retries: int = 5,
        backoff_base: float = 1.0,
        backoff_cap: float = 60.0,
        timeout: float = 20.0,
        history: Callable[..., pd.DataFrame] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.adjusted = auto_adjust
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.timeout = timeout
        self._history = history or _yf_history
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._now = now or (lambda: datetime.now(UTC))

    @classmethod
    def from_settings(cls, settings: Settings) -> YFinanceProvider:
        return cls(
            auto_adjust=settings.yf_auto_adjust,
            max_retries=settings.yf_max_retries,
            backoff_base=settings.yf_backoff_base,
            backoff_cap=settings.yf_backoff_cap,
        )

    def backoff(self, attempt: int) -> float:
        """Full jitter: uniform(0, min(cap, base * 2**attempt))."""
        return self._rng.uniform(0.0, min(self.backoff_cap, self.backoff_base * 2**attempt))

    def _call(self, symbol: str, kwargs: dict[str, Any]) -> pd.DataFrame | None:
        """One logical request with retries; None means "no bars" (a known symbol, empty range)."""
        for attempt in range(self.max_retries + 1):
            try:
                return self._history(symbol, **kwargs)
            except Exception as exc:
                kind = _classify(exc)
                if kind == "unknown":
                    raise UnknownTicker(symbol, "Yahoo Finance does not know it") from exc
                if kind == "missing":
                    return None
                if kind not in ("rate_limit", "network"):
                    raise ProviderError(f"yfinance failed for {symbol}: {exc}") from exc
                if attempt == self.max_retries:
                    if kind == "rate_limit":
                        raise RateLimited(
                            f"yfinance rate limit for {symbol} persisted after "
                            f"{self.max_retries} retries; try again later"
                        ) from exc
                    raise ProviderError(
                        f"network unreachable fetching {symbol} from Yahoo Finance "
                        f"after {self.max_retries} retries: {str(exc).splitlines()[0]}"
                    ) from exc
                delay = self.backoff(attempt)
                log.warning(
                    "yfinance request failed; retrying",
                    extra={
                        "ticker": symbol,
                        "kind": kind,
                        "attempt": attempt + 1,
                        "delay_s": round(delay, 2),
                    },
                )
                self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def fetch(self, ticker: str, start: date | None, end: date | None) -> pd.DataFrame:
        symbol = normalize_ticker(ticker)
        check_range(start, end)
        kwargs: dict[str, Any] = {
            "interval": "1d",
            "auto_adjust": self.adjusted,
            "actions": True,  # splits and dividends come with the bars (forecaster.ingest)
            "timeout": self.timeout,
        }
        if start is None and end is None:
            kwargs["period"] = "max"
        else:
            if start is not None:
                kwargs["start"] = start.isoformat()
            else:
                kwargs["period"] = "max"
            if end is not None:
                kwargs["end"] = (end + timedelta(days=1)).isoformat()  # yfinance's end is exclusive
        raw = self._call(symbol, kwargs)
        if raw is None or raw.empty:
            if start is None:
                raise UnknownTicker(symbol, "Yahoo Finance returned no price history")
            return empty_frame()
        frame, actions = self._normalise(symbol, raw)
        frame = frame.loc[frame[list(OHLCV)].notna().any(axis=1)]
        if start is not None:
            frame = frame.loc[frame.index >= pd.Timestamp(start)]
            actions = actions.loc[actions.index >= pd.Timestamp(start)]
        if end is not None:
            frame = frame.loc[frame.index <= pd.Timestamp(end)]
            actions = actions.loc[actions.index <= pd.Timestamp(end)]
        frame.attrs["actions"] = actions
        return frame

    def _normalise(self, symbol: str, raw: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        df = raw
        if isinstance(df.columns, pd.MultiIndex):
            # (Price, Ticker) from yf.download: keep this ticker's level.
            level = next(
                (i for i in range(df.columns.nlevels) if symbol in df.columns.get_level_values(i)),
                None,
            )
            df = (
                df.xs(symbol, axis=1, level=level)
                if level is not None
                else df.droplevel(-1, axis=1)
            )
        actions = _actions(df)
        df = df.drop(
            columns=[c for c in ("Dividends", "Stock Splits", "Capital Gains") if c in df.columns]
        )
        index = pd.DatetimeIndex(df.index)
        if index.tz is not None and len(index):
            local_now = self._now().astimezone(index.tz)
            last = index[-1]
            if last.date() == local_now.date() and local_now.time() < SESSION_FINAL_AFTER:
                log.info(
                    "dropping today's unfinished bar",
                    extra={"ticker": symbol, "date": str(last.date())},
                )
                df = df.iloc[:-1]
        return canonicalize(df), actions


def _actions(df: pd.DataFrame) -> pd.DataFrame:
    """Splits (new shares per old) and cash dividends, by exchange-local date."""
    parts = []
    for column, kind in (("Stock Splits", "split"), ("Dividends", "dividend")):
        if column not in df.columns:
            continue
        values = pd.to_numeric(df[column], errors="coerce")
        values = values[values.notna() & (values != 0)]
        parts.append(pd.DataFrame({"kind": kind, "value": values.astype("float64")}))
    found = pd.concat(parts) if parts else pd.DataFrame({"kind": [], "value": []})
    index = pd.DatetimeIndex(pd.to_datetime(found.index))
    if index.tz is not None:
        index = index.tz_localize(None)
    found.index = index.normalize().as_unit("ns").rename("date")
    return found
