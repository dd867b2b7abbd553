"""Prices: the stored daily bars of a ticker, upserted on (ticker_id, date) and read as a
frame or a page."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd
from sqlalchemy import (
    func,
    select,
)
from sqlalchemy.orm import (
    Session,
)

from forecaster.providers.base import PRICE_COLUMNS
from forecaster.storage.schema import (
    Price,
    Ticker,
    utcnow,
)
from forecaster.storage.touch import touch
from forecaster.storage.upsert import upsert


def price_bounds(session: Session, ticker_id: int) -> tuple[date | None, date | None]:
    first, last = session.execute(
        select(func.min(Price.date), func.max(Price.date)).where(Price.ticker_id == ticker_id)
    ).one()
    return first, last


@dataclass(frozen=True)
class UpsertCounts:
    inserted: int
    updated: int
    unchanged: int


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)


def upsert_prices(
    session: Session,
    ticker: Ticker,
    frame: pd.DataFrame,
    *,
    source: str,
    adjusted: bool,
) -> UpsertCounts:
    """Insert new days and update changed ones; identical rows are left alone.

    `frame` is a validated canonical frame. The caller's transaction makes the batch atomic.
    """
    if frame.empty:
        return UpsertCounts(0, 0, 0)
    first, last = frame.index.min().date(), frame.index.max().date()
    existing = {
        row.date: row
        for row in session.execute(
            select(Price.date, *[getattr(Price, c) for c in PRICE_COLUMNS]).where(
                Price.ticker_id == ticker.id, Price.date >= first, Price.date <= last
            )
        )
    }
    now = utcnow()
    to_write: list[dict[str, Any]] = []
    inserted = updated = 0
    for when, values in zip(
        frame.index, frame.loc[:, list(PRICE_COLUMNS)].itertuples(index=False), strict=True
    ):
        day = when.date()
        record = {
            c: (None if pd.isna(v) else float(v))
            for c, v in zip(PRICE_COLUMNS, values, strict=True)
        }
        old = existing.get(day)
        if old is None:
            inserted += 1
        elif all(_same(getattr(old, c), record[c]) for c in PRICE_COLUMNS):
            continue
        else:
            updated += 1
        to_write.append(
            {
                "ticker_id": ticker.id,
                "date": day,
                **record,
                "source": source,
                "adjusted": adjusted,
                "fetched_at": now,
            }
        )
    if to_write:
        upsert(session, Price, to_write, ["ticker_id", "date"])
        touch(session, ticker.id)
    return UpsertCounts(inserted, updated, len(frame) - inserted - updated)


def load_prices(
    session: Session,
    ticker_id: int,
    start: date | None = None,
    end: date | None = None,
    limit: int | None = None,
) -> pd.DataFrame:
    """Stored prices as a canonical frame (DatetimeIndex `date`, PRICE_COLUMNS), oldest first.

    With `limit`, the newest `limit` rows of the range.
    """
    query = select(Price.date, *[getattr(Price, c) for c in PRICE_COLUMNS]).where(
        Price.ticker_id == ticker_id
    )
    if start is not None:
        query = query.where(Price.date >= start)
    if end is not None:
        query = query.where(Price.date <= end)
    if limit is not None:
        query = query.order_by(Price.date.desc()).limit(limit)
    else:
        query = query.order_by(Price.date)
    rows = session.execute(query).all()
    frame = pd.DataFrame(rows, columns=["date", *PRICE_COLUMNS])
    frame.index = pd.DatetimeIndex(pd.to_datetime(frame.pop("date")), name="date").as_unit("ns")
    frame = frame.astype("float64")
    return frame.sort_index()


def price_page(
    session: Session, ticker_id: int, start: date | None, end: date | None, limit: int
) -> tuple[list[Price], bool]:
    """Rows in [start, end], oldest first, at most `limit`, and whether more matched. Without
    `start`: the newest `limit` rows up to `end`."""
    query = select(Price).where(Price.ticker_id == ticker_id)
    if start is not None:
        query = query.where(Price.date >= start)
    if end is not None:
        query = query.where(Price.date <= end)
    if start is None:
        rows = list(session.scalars(query.order_by(Price.date.desc()).limit(limit + 1)))
        return list(reversed(rows[:limit])), len(rows) > limit
    rows = list(session.scalars(query.order_by(Price.date).limit(limit + 1)))
    return rows[:limit], len(rows) > limit
