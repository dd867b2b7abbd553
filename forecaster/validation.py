"""OHLCV sanity rules: pure functions on canonical frames, reporting every offending row."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecaster.providers.base import OHLC, OHLCV, PRICE_COLUMNS

REQUIRED = OHLCV
# Daily bars are 1 calendar day apart, 3 over a weekend, 4 over a long weekend: a median
# spacing above this is weekly or monthly data.
MAX_MEDIAN_SPACING_DAYS = 4.0
GAP_DAYS = 7  # more calendar days than this between two bars is reported as a gap
# Prices and volumes beyond these are data errors, whatever the currency (BTC in IDR is ~1e9).
MAX_PRICE = 1e12
MAX_VOLUME = 1e15
# Below this a price is not a quote but an underflow or a unit error (5e-324 once passed as
# "positive" and then failed every night's backtest as a non-finite error).
MIN_PRICE = 1e-6


@dataclass(frozen=True)
class ValidationReport:
    valid: pd.DataFrame  # sorted by date, unique dates, every rule passed
    rejected: pd.DataFrame  # offending rows with a `reason` column (all reasons, joined by "; ")

    @property
    def ok(self) -> bool:
        return self.rejected.empty

    def summary(self, limit: int = 5) -> str:
        if self.rejected.empty:
            return "all rows valid"
        lines = [f"{len(self.rejected)} row(s) rejected:"]
        for when, row in self.rejected.head(limit).iterrows():
            stamp = when.date().isoformat() if isinstance(when, pd.Timestamp) else str(when)
            lines.append(f"  {stamp}: {row['reason']}")
        if len(self.rejected) > limit:
            lines.append(f"  ... and {len(self.rejected) - limit} more")
        return "\n".join(lines)


def validate_prices(frame: pd.DataFrame) -> ValidationReport:
    """Split a canonical frame into valid rows and rejected rows with reasons.

    Rules: no NaN in open/high/low/close/volume; prices in [1e-6, 1e12]; high >= low; open and close within
    [low, high]; volume >= 0; dates unique (every copy of a duplicated date is rejected: we cannot
    know which is right) and increasing (a row dated before an earlier row is rejected).
    """
    n = len(frame)
    reasons: list[list[str]] = [[] for _ in range(n)]

    def flag(mask: np.ndarray, reason: str) -> None:
        for i in np.flatnonzero(mask):
            reasons[i].append(reason)

    values = {c: frame[c].to_numpy(dtype="float64") for c in REQUIRED}
    for c in REQUIRED:
        flag(np.isnan(values[c]), f"{c} is NaN")
        flag(np.isinf(values[c]), f"{c} is infinite")
    with np.errstate(invalid="ignore"):
        for c in OHLC:
            flag(values[c] <= 0, f"{c} is not positive")
            flag((values[c] > 0) & (values[c] < MIN_PRICE), f"{c} is below {MIN_PRICE:g}")
            flag(np.isfinite(values[c]) & (values[c] > MAX_PRICE), f"{c} exceeds {MAX_PRICE:g}")
        flag(
            np.isfinite(values["volume"]) & (values["volume"] > MAX_VOLUME),
            f"volume exceeds {MAX_VOLUME:g}",
        )
        flag(values["high"] < values["low"], "high < low")
        for c in ("open", "close"):
            flag(
                (values[c] < values["low"]) | (values[c] > values["high"]),
                f"{c} outside [low, high]",
            )
        flag(values["volume"] < 0, "volume is negative")

    dates = pd.DatetimeIndex(frame.index)
    flag(np.asarray(dates.duplicated(keep=False)), "duplicate date")
    # Non-monotonic: a row whose date is earlier than some row before it.
    if n:
        as_int = dates.asi8
        running_max = np.maximum.accumulate(as_int)
        back = np.zeros(n, dtype=bool)
        back[1:] = as_int[1:] < running_max[:-1]
        flag(back, "date out of order")

    bad = np.array([bool(r) for r in reasons], dtype=bool) if n else np.zeros(0, dtype=bool)
    rejected = frame.loc[bad].copy()
    rejected["reason"] = ["; ".join(r) for r in reasons if r]
    valid = frame.loc[~bad, list(PRICE_COLUMNS)].sort_index()
    return ValidationReport(valid=valid, rejected=rejected)


def median_spacing_days(index: pd.DatetimeIndex) -> float | None:
    """Median calendar days between consecutive bars, or None with fewer than 3 bars."""
    if len(index) < 3:
        return None
    days = np.diff(pd.DatetimeIndex(index).as_unit("ns").sort_values().asi8) / 86_400e9
    return float(np.median(days))


def check_daily(frame: pd.DataFrame, ticker: str = "ticker") -> None:
    """Raise NotDaily when the bars are spaced like weekly or monthly data."""
    from forecaster.errors import NotDaily

    spacing = median_spacing_days(pd.DatetimeIndex(frame.index))
    if spacing is not None and spacing > MAX_MEDIAN_SPACING_DAYS:
        raise NotDaily(ticker, spacing)


def gaps(index: pd.DatetimeIndex, limit: int = GAP_DAYS) -> list[tuple[pd.Timestamp, int]]:
    """(first bar after the gap, calendar days since the previous bar) for every gap > limit."""
    idx = pd.DatetimeIndex(index).as_unit("ns").sort_values()
    if len(idx) < 2:
        return []
    days = np.diff(idx.asi8) // 86_400_000_000_000
    return [(idx[i + 1], int(days[i])) for i in np.flatnonzero(days > limit)]
