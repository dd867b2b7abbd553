"""Trading sessions from the exchange calendar (NYSE by default): next trading day, not calendar
day; and "today" in the time zone the pipeline is scheduled in."""

from __future__ import annotations

from datetime import date, datetime
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd

from forecaster.errors import ConfigError
from forecaster.settings import Settings


@cache
def _calendar_until(name: str, end_year: int) -> Any:
    import exchange_calendars as xcals

    try:
        return xcals.get_calendar(name, start="1990-01-01", end=f"{end_year}-12-31")
    except Exception as exc:  # InvalidCalendarName and friends
        raise ConfigError(f"unknown exchange calendar {name!r}") from exc


def _calendar(name: str, day: pd.Timestamp | None = None) -> Any:
    """A calendar whose horizon covers `day` (and today) by at least a year.

    Built per horizon year, not once at import: a scheduler running for years would otherwise
    fall off the end of the calendar it built on its first day and lose the holidays.
    """
    year = date.today().year + 1
    if day is not None:
        year = max(year, day.year + 1)
    return _calendar_until(name, year)


def next_trading_day(day: date, calendar: str = "XNYS") -> date:
    """The first session strictly after `day` (2018-12-31 -> 2019-01-02)."""
    ts = pd.Timestamp(day)
    cal = _calendar(calendar, ts)
    if ts >= cal.last_session:
        # Beyond the calendar's horizon: fall back to the next weekday.
        return (ts + pd.offsets.BDay(1)).date()
    return (
        cal.date_to_session(ts, direction="next").date()
        if not cal.is_session(ts)
        else cal.next_session(ts).date()
    )


def is_trading_day(day: date, calendar: str = "XNYS") -> bool:
    ts = pd.Timestamp(day)
    cal = _calendar(calendar, ts)
    if ts > cal.last_session or ts < cal.first_session:
        return ts.dayofweek < 5
    return bool(cal.is_session(ts))


def schedule_zone(settings: Settings) -> ZoneInfo:
    """The scheduler's time zone (STOCKCAST_SCHEDULE_TIMEZONE, the exchange's by default)."""
    try:
        return ZoneInfo(settings.schedule_timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"unknown time zone {settings.schedule_timezone!r}") from exc


def exchange_today(settings: Settings, now: datetime | None = None) -> date:
    zone = schedule_zone(settings)
    return (now.astimezone(zone) if now else datetime.now(zone)).date()


def last_session_before(day: date, calendar: str = "XNYS") -> date:
    """The last session strictly before `day`: the newest close a forecast made on `day` (after
    the nightly run) should be as of."""
    ts = pd.Timestamp(day)
    cal = _calendar(calendar, ts)
    if ts > cal.last_session or ts <= cal.first_session:
        return (ts - pd.offsets.BDay(1)).date()
    return cal.date_to_session(ts - pd.Timedelta(days=1), direction="previous").date()


def sessions_between(start: date, end: date, calendar: str = "XNYS") -> int:
    """How many sessions fall in (start, end]: 0 when `start` is not before `end`."""
    if start >= end:
        return 0
    a, b = pd.Timestamp(start), pd.Timestamp(end)
    cal = _calendar(calendar, b)
    if a < cal.first_session or b > cal.last_session:
        return int(len(pd.bdate_range(a, b)) - (1 if a.dayofweek < 5 else 0))
    sessions = cal.sessions
    return int(sessions.searchsorted(b, side="right") - sessions.searchsorted(a, side="right"))
