"""Every validation rule, with the offending rows reported and the rest kept."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecaster.providers.base import canonicalize
from forecaster.validation import validate_prices


def frame(rows: list[tuple[str, float, float, float, float, float]]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["date", "open", "high", "low", "close", "volume"])
    df.index = pd.to_datetime(df.pop("date"))
    return canonicalize(df)


GOOD = [
    ("2020-01-02", 10.0, 11.0, 9.0, 10.5, 1000.0),
    ("2020-01-03", 10.5, 12.0, 10.0, 11.0, 1200.0),
    ("2020-01-06", 11.0, 11.5, 10.5, 11.2, 900.0),
]


def test_clean_batch_passes() -> None:
    report = validate_prices(frame(GOOD))
    assert report.ok
    assert len(report.valid) == 3
    assert report.summary() == "all rows valid"


@pytest.mark.parametrize(
    ("bad_row", "reason"),
    [
        (("2020-01-07", np.nan, 11.0, 9.0, 10.0, 100.0), "open is NaN"),
        (("2020-01-07", 10.0, np.inf, 9.0, 10.0, 100.0), "high is infinite"),
        (("2020-01-07", 10.0, 1e303, 9.0, 10.0, 100.0), "high exceeds 1e+12"),
        (("2020-01-07", 10.0, 11.0, 9.0, 10.0, 1e300), "volume exceeds 1e+15"),
        (("2020-01-07", 10.0, 11.0, 9.0, 10.0, np.inf), "volume is infinite"),
        (("2020-01-07", 10.0, 11.0, 9.0, np.nan, 100.0), "close is NaN"),
        (("2020-01-07", 10.0, 11.0, 9.0, 10.0, np.nan), "volume is NaN"),
        (("2020-01-07", 0.0, 11.0, 0.0, 10.0, 100.0), "open is not positive"),
        (("2020-01-07", 10.0, 11.0, -1.0, 10.0, 100.0), "low is not positive"),
        (("2020-01-07", 5e-324, 5e-324, 5e-324, 5e-324, 100.0), "close is below 1e-06"),
        (("2020-01-07", 10.0, 9.0, 11.0, 10.0, 100.0), "high < low"),
        (("2020-01-07", 10.0, 11.0, 9.0, 12.0, 100.0), "close outside [low, high]"),
        (("2020-01-07", 10.0, 11.0, 9.0, 8.5, 100.0), "close outside [low, high]"),
        (("2020-01-07", 13.0, 11.0, 9.0, 10.0, 100.0), "open outside [low, high]"),
        (("2020-01-07", 10.0, 11.0, 9.0, 10.0, -5.0), "volume is negative"),
    ],
)
def test_each_rule_rejects_the_offending_row(bad_row: tuple, reason: str) -> None:
    report = validate_prices(frame([*GOOD, bad_row]))
    assert not report.ok
    assert list(report.rejected.index) == [pd.Timestamp(bad_row[0])]
    assert reason in report.rejected["reason"].iloc[0]
    assert len(report.valid) == 3  # the good rows are kept
    assert reason in report.summary()


def test_duplicate_dates_reject_every_copy() -> None:
    report = validate_prices(frame([*GOOD, ("2020-01-03", 10.6, 12.0, 10.0, 11.1, 1300.0)]))
    assert len(report.rejected) == 2
    assert all("duplicate date" in r for r in report.rejected["reason"])
    assert [d.day for d in report.valid.index] == [2, 6]


def test_out_of_order_dates_rejected() -> None:
    report = validate_prices(frame([GOOD[0], GOOD[2], GOOD[1]]))
    assert list(report.rejected.index) == [pd.Timestamp("2020-01-03")]
    assert "date out of order" in report.rejected["reason"].iloc[0]
    assert report.valid.index.is_monotonic_increasing


def test_several_reasons_are_all_reported() -> None:
    report = validate_prices(frame([*GOOD, ("2020-01-07", -1.0, 9.0, 11.0, np.nan, -5.0)]))
    reason = report.rejected["reason"].iloc[0]
    for part in ("close is NaN", "open is not positive", "high < low", "volume is negative"):
        assert part in reason


def test_empty_frame_is_valid_and_empty() -> None:
    report = validate_prices(frame([]))
    assert report.ok
    assert report.valid.empty


def test_daily_bars_pass_and_monthly_or_weekly_bars_are_refused() -> None:
    from forecaster.errors import NotDaily
    from forecaster.validation import check_daily, gaps, median_spacing_days

    daily = frame(GOOD)
    check_daily(daily, "OK")  # daily with a weekend
    assert median_spacing_days(daily.index) == 2.0  # spacings 1 and 3
    for freq, name in (("W-FRI", "weekly"), ("ME", "monthly")):
        index = pd.date_range("2020-01-01", periods=12, freq=freq)
        bars = pd.DataFrame(
            {"open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0}, index=index
        )
        with pytest.raises(NotDaily, match=r"^X: the bars are not daily \(median spacing"):
            check_daily(bars, "X")
        assert name
    # a gap of 9 calendar days is reported, a weekend is not
    index = pd.DatetimeIndex(["2020-01-02", "2020-01-03", "2020-01-06", "2020-01-15"])
    assert gaps(index) == [(pd.Timestamp("2020-01-15"), 9)]
    assert median_spacing_days(index[:2]) is None  # too few bars to judge
