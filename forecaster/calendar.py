"""Trading sessions from the exchange calendar (NYSE by default): next trading day, not calendar day."""

from __future__ import annotations

from datetime import date
from functools import cache
from typing import Any

import pandas as pd

from forecaster.errors import ConfigError


@cache
def _calendar(name: str) -> Any:
    import exchange_calendars as xcals

    try:
        return xcals.get_calendar(name, start="1990-01-01")
    except Exception as exc:  # InvalidCalendarName and friends
        raise ConfigError(f"unknown exchange calendar {name!r}") from exc


def next_trading_day(day: date, calendar: str = "XNYS") -> date:
    """The first session strictly after `day` (2018-12-31 -> 2019-01-02)."""
    cal = _calendar(calendar)
    ts = pd.Timestamp(day)
    if ts >= cal.last_session:
        # Beyond the calendar's horizon: fall back to the next weekday.
        return (ts + pd.offsets.BDay(1)).date()
    return (
        cal.date_to_session(ts, direction="next").date()
        if not cal.is_session(ts)
        else cal.next_session(ts).date()
    )


def is_trading_day(day: date, calendar: str = "XNYS") -> bool:
    cal = _calendar(calendar)
    ts = pd.Timestamp(day)
    if ts > cal.last_session or ts < cal.first_session:
        return ts.dayofweek < 5
    return bool(cal.is_session(ts))
