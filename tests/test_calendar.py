"""Target dates are the next NYSE session, not the next calendar day or weekday."""

from __future__ import annotations

from datetime import date

import pytest

from forecaster.calendar import is_trading_day, next_trading_day


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2013, 3, 1), date(2013, 3, 4)),  # Friday -> Monday
        (date(2013, 3, 28), date(2013, 4, 1)),  # Good Friday is a holiday
        (date(2018, 12, 24), date(2018, 12, 26)),  # Christmas
        (date(2018, 12, 31), date(2019, 1, 2)),  # New Year's Day
        (date(2018, 12, 4), date(2018, 12, 6)),  # market closed for President Bush's funeral
        (date(2026, 11, 25), date(2026, 11, 27)),  # Thanksgiving
    ],
)
def test_next_trading_day(day: date, expected: date) -> None:
    assert next_trading_day(day) == expected


def test_is_trading_day() -> None:
    assert is_trading_day(date(2026, 11, 24))
    assert not is_trading_day(date(2026, 11, 26))  # Thanksgiving
    assert not is_trading_day(date(2026, 11, 28))  # Saturday
