"""Read models of the pages: the chart's columns (the dashboard's: forecaster.storage.dashboard;
the runs list: forecaster.storage.runs)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from forecaster.storage.schema import Prediction, Price


@dataclass(frozen=True)
class ChartSeries:
    """Columns for a chart: closes by date, and forecasts by target date with the realized close.

    Each forecast row has as_of_date, target_date, predicted_close, lower, upper, coverage,
    method, last_close and actual_close (None until the target day's close is stored). Plain
    rows, not ORM objects: a whole history is thousands of them."""

    dates: list[date]
    closes: list[float]
    forecasts: list[Any]
    truncated: bool


def chart_series(
    session: Session, ticker_id: int, start: date | None, end: date | None, limit: int
) -> ChartSeries:
    """Closes in [start, end] and the forecasts whose target falls in it, oldest first; at most
    the newest `limit` of each (`truncated` says so)."""
    P = Prediction
    price_query = select(Price.date, Price.close).where(Price.ticker_id == ticker_id)
    forecast_query = (
        select(
            P.as_of_date,
            P.target_date,
            P.predicted_close,
            P.lower,
            P.upper,
            P.coverage,
            P.method,
            P.last_close,
            Price.close.label("actual_close"),
        )
        .outerjoin(Price, (Price.ticker_id == P.ticker_id) & (Price.date == P.target_date))
        .where(P.ticker_id == ticker_id)
    )
    if start is not None:
        price_query = price_query.where(Price.date >= start)
        forecast_query = forecast_query.where(P.target_date >= start)
    if end is not None:
        price_query = price_query.where(Price.date <= end)
        forecast_query = forecast_query.where(P.target_date <= end)
    prices = session.execute(price_query.order_by(Price.date.desc()).limit(limit + 1)).all()
    forecasts = session.execute(
        forecast_query.order_by(P.target_date.desc()).limit(limit + 1)
    ).all()
    truncated = len(prices) > limit or len(forecasts) > limit
    prices = prices[:limit][::-1]
    return ChartSeries(
        dates=[d for d, _ in prices],
        closes=[c for _, c in prices],
        forecasts=list(forecasts[:limit][::-1]),
        truncated=truncated,
    )
