"""GET /v1/summary (one row per ticker, for the dashboard) and GET /v1/series/<ticker> (chart
columns: closes, forecasts with their intervals, realized closes and errors).

The pages read these endpoints like any other client: one source for the numbers they show.
"""

from __future__ import annotations

import math
from datetime import date

from flask import Blueprint, Response

import api.schemas as schemas
from api.context import db, state
from api.params import parse_query, respond, ticker_param
from api.serialize import change_pct, interval, num, pvalue
from forecaster import calendar, storage
from forecaster.errors import UnknownTicker, public_error

bp = Blueprint("summary", __name__)


def skill(mv: storage.ModelVersion | None) -> schemas.Skill | None:
    """The network's backtest against persistence and the best baseline (legacy versions: only
    the stored MAE ratio)."""
    if mv is None:
        return None
    bt = mv.record("backtest") or {}
    return schemas.Skill(
        model_version=mv.version,
        method=mv.method,
        mae_ratio=num(bt.get("mae_ratio", mv.mae_ratio)),
        dm_pvalue=pvalue(bt.get("dm_pvalue")),
        best_baseline=bt.get("best_baseline"),
        best_baseline_mae_ratio=num(bt.get("best_baseline_mae_ratio")),
        dm_best_pvalue=pvalue(bt.get("dm_best_pvalue")),
        n_forecasts=bt.get("n_forecasts"),
        backtest_end=bt.get("end"),
    )


def freshness(
    prediction: storage.Prediction | None, last_date: date | None, last_session: date, cal: str
) -> schemas.Freshness:
    """Stale: no forecast, or one made before the last exchange session (or the newest close)."""
    if prediction is None:
        return schemas.Freshness(
            forecast_as_of=None,
            last_session=last_session,
            sessions_behind=None,
            behind_data=last_date is not None,
            stale=True,
        )
    behind = calendar.sessions_between(prediction.as_of_date, last_session, cal)
    behind_data = last_date is not None and prediction.as_of_date < last_date
    return schemas.Freshness(
        forecast_as_of=prediction.as_of_date,
        last_session=last_session,
        sessions_behind=behind,
        behind_data=behind_data,
        stale=behind > 0 or behind_data,
    )


def last_run(step: storage.JobStep | None) -> schemas.LastRun | None:
    if step is None:
        return None
    return schemas.LastRun(
        run_id=step.run_id,
        status=step.status,
        started_at=step.started_at,
        finished_at=step.finished_at,
        duration_seconds=num(step.duration_seconds, 3),
        detail=step.detail,
        error_code=step.error_code,
        error=public_error(step.error_code, step.error),
    )


def summary_row(row: storage.DashboardRow, last_session: date, cal: str) -> schemas.SummaryRow:
    p = row.prediction
    forecast = None
    if p is not None:
        forecast = schemas.SummaryForecast(
            as_of=p.as_of_date,
            target_date=p.target_date,
            predicted_close=num(p.predicted_close, 4),
            predicted_change_pct=change_pct(p),
            interval=interval(
                p, row.model if row.model and row.model.id == p.model_version_id else None
            ),
            last_close=num(p.last_close, 4),
            method=p.method,
        )
    return schemas.SummaryRow(
        ticker=row.ticker.symbol,
        name=row.ticker.name,
        last_date=row.last_date,
        last_close=num(row.last_close, 4),
        recent_closes=[num(c, 4) for c in row.recent_closes],
        forecast=forecast,
        skill=skill(row.model),
        freshness=freshness(p, row.last_date, last_session, cal),
        last_run=last_run(row.last_step),
        suspect=_suspect(row.ticker),
    )


@bp.get("/v1/summary")
def summary() -> Response:
    query = parse_query(schemas.SummaryQuery)
    limit, offset = query.limit, query.offset
    settings = state().settings
    last_session = calendar.last_session_before(
        calendar.exchange_today(settings), settings.exchange_calendar
    )
    total, rows = storage.dashboard_rows(db(), query.q, limit, offset)
    return respond(
        schemas.SummaryPage(
            last_session=last_session,
            total=total,
            limit=limit,
            offset=offset,
            next_offset=offset + len(rows) if offset + len(rows) < total else None,
            tickers=[summary_row(r, last_session, settings.exchange_calendar) for r in rows],
        )
    )


@bp.get("/v1/series/<ticker>")
def series(ticker: str) -> Response:
    symbol = ticker_param(ticker)
    query = parse_query(schemas.SeriesQuery)
    start, end, limit = query.start, query.end, query.limit
    row = storage.get_ticker(db(), symbol)
    if row is None:
        raise UnknownTicker(symbol, "not tracked by this service")
    key = f"series:{symbol}:{start}:{end}:{limit}"
    cache = state().responses  # the same short per-worker TTL as the latest forecast
    body = cache.get(key)
    if body is None:
        body = respond(_series(row, start, end, limit)).get_data()
        cache.put(key, body)
    return Response(body, mimetype="application/json")


def _column(values: list[float | None], digits: int = 4) -> list[float | None]:
    """num() over a column, inlined: a whole history is tens of thousands of values."""
    return [round(v, digits) if v is not None and math.isfinite(v) else None for v in values]


def _suspect(row: storage.Ticker) -> schemas.Suspect | None:
    if row.suspect_day is None:
        return None
    return schemas.Suspect(day=row.suspect_day, note=row.suspect_note)


def _series(
    row: storage.Ticker, start: date | None, end: date | None, limit: int
) -> schemas.Series:
    symbol = row.symbol
    data = storage.chart_series(db(), row.id, start, end, limit)
    fc = data.forecasts
    actual = [f.actual_close for f in fc]
    return schemas.Series(
        ticker=symbol,
        start=start,
        end=end,
        truncated=data.truncated,
        closes=schemas.SeriesCloses(date=list(data.dates), close=_column(data.closes)),
        forecasts=schemas.SeriesForecasts(
            as_of=[f.as_of_date for f in fc],
            target_date=[f.target_date for f in fc],
            predicted_close=_column([f.predicted_close for f in fc]),
            low=_column([f.lower for f in fc]),
            high=_column([f.upper for f in fc]),
            coverage=_column([f.coverage for f in fc]),
            method=[f.method for f in fc],
            actual_close=_column(actual),
            abs_error=_column(
                [
                    None if a is None else abs(f.predicted_close - a)
                    for f, a in zip(fc, actual, strict=True)
                ]
            ),
            persistence_abs_error=_column(
                [
                    None if a is None else abs(f.last_close - a)
                    for f, a in zip(fc, actual, strict=True)
                ]
            ),
        ),
        actions=[
            schemas.Action(date=a.date, kind=a.kind, value=a.value)  # type: ignore[arg-type]
            for a in storage.actions_of(db(), row.id, start, end)
        ],
        suspect=_suspect(row),
    )
