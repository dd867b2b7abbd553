"""Target dates are the next NYSE session, not the next calendar day or weekday."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from forecaster.calendar import (
    exchange_today,
    is_trading_day,
    last_session_before,
    next_trading_day,
    schedule_zone,
    sessions_between,
)
from forecaster.errors import ConfigError
from forecaster.settings import Settings


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


def test_today_is_the_date_in_the_schedule_zone() -> None:
    settings = Settings(schedule_timezone="America/New_York")
    assert schedule_zone(settings) == ZoneInfo("America/New_York")
    late_evening_in_new_york = datetime(2026, 11, 25, 2, 30, tzinfo=UTC)
    assert exchange_today(settings, late_evening_in_new_york) == date(2026, 11, 24)
    with pytest.raises(ConfigError, match="unknown time zone 'Mars/Olympus'"):
        schedule_zone(Settings(schedule_timezone="Mars/Olympus"))


def test_holidays_beyond_the_first_calendar_horizon_are_known() -> None:
    """A scheduler running for years keeps its holidays: the calendar's horizon follows the day
    asked about, not the day the process started."""
    far = date.today().year + 3
    christmas_eve = date(far, 12, 24)
    while christmas_eve.weekday() >= 4:  # a Mon-Thu Dec 24, so the 25th is a weekday holiday
        far += 1
        christmas_eve = date(far, 12, 24)
    assert next_trading_day(christmas_eve) == date(far, 12, 26)
    assert not is_trading_day(date(far, 12, 25))


def test_last_session_before_and_sessions_between() -> None:
    assert last_session_before(date(2019, 1, 2)) == date(2018, 12, 31)  # New Year's Day closed
    assert last_session_before(date(2018, 12, 31)) == date(2018, 12, 28)  # over the weekend
    assert sessions_between(date(2018, 12, 28), date(2019, 1, 3)) == 3  # 12-31, 01-02, 01-03
    assert sessions_between(date(2019, 1, 3), date(2018, 12, 28)) == 0
    assert sessions_between(date(2018, 12, 31), date(2018, 12, 31)) == 0
