"""GET /v1/summary (one row per ticker, for the dashboard) and GET /v1/series/<ticker> (chart
columns: closes, forecasts with their intervals, realized closes and errors).

The pages read these endpoints like any other client: one source for the numbers they show.
"""

from __future__ import annotations

import dataclasses
import gzip
import math
from datetime import date
from typing import cast

from flask import Blueprint, Response, request

import api.queries as queries
import api.schemas as schemas
from api.context import db, state, ticker_or_404
from api.params import parse_query, respond, ticker_param
from api.routes import Operation, route
from api.serialize import change_pct, interval, num, pvalue
from forecaster import calendar, series_document, storage
from forecaster.documents import dumps

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
    return schemas.LastRun.model_validate(step, from_attributes=True)


def summary_row(row: storage.DashboardRow, last_session: date, cal: str) -> schemas.SummaryRow:
    p = row.prediction
    forecast = None
    if p is not None:
        forecast = schemas.SummaryForecast(
            as_of=p.as_of_date,
            target_date=p.target_date,
            predicted_close=p.predicted_close,
            predicted_change_pct=cast(float, change_pct(p)),  # as the Forecast document
            interval=interval(
                p, row.model if row.model and row.model.id == p.model_version_id else None
            ),
            last_close=p.last_close,
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
        suspect=series_document.suspect(row.ticker),
    )


@route(
    bp,
    Operation(
        "/v1/summary",
        "getSummary",
        "Every ticker in one row: last close, next forecast, skill, freshness",
        "One page of tickers",
        schemas.SummaryPage,
        queries.SummaryQuery,
        description="What the dashboard (`/`) shows: per ticker, the last close, the newest "
        "forecast with its change and interval and the method that made it, the network's "
        "backtest skill vs persistence, whether the forecast is stale, the last pipeline step and "
        "the recent closes. Sorted by symbol; `q` filters.",
    ),
)
def summary() -> Response:
    query = parse_query(queries.SummaryQuery)
    limit, offset = query.limit, query.offset
    settings = state().settings
    last_session = calendar.last_session_before(
        calendar.exchange_today(settings), settings.exchange_calendar
    )
    session = db()
    states = storage.ticker_states(session)
    matching = sort_states(filter_states(states, query, last_session), query.sort)
    page = matching[offset : offset + limit]
    rows = storage.dashboard_rows(session, [t.id for t in page])
    return respond(
        schemas.SummaryPage(
            last_session=last_session,
            total=len(matching),
            limit=limit,
            offset=offset,
            next_offset=offset + len(rows) if offset + len(rows) < len(matching) else None,
            sort=query.sort,
            universe=universe(states, last_session, storage.last_run(session)),
            tickers=[summary_row(r, last_session, settings.exchange_calendar) for r in rows],
        )
    )


def filter_states(
    states: list[storage.TickerState], query: queries.SummaryQuery, last_session: date
) -> list[storage.TickerState]:
    out = states
    if query.q:
        upper, lower = query.q.upper(), query.q.lower()
        out = [t for t in out if upper in t.symbol or lower in (t.name or "").lower()]
    if query.method:
        out = [t for t in out if t.method == query.method]
    if query.status == "stale":
        out = [t for t in out if t.stale(last_session)]
    elif query.status == "fresh":
        out = [t for t in out if not t.stale(last_session)]
    elif query.status == "suspect":
        out = [t for t in out if t.suspect]
    elif query.status == "failed":
        out = [t for t in out if t.step_status == "failed"]
    return out


_SORT_KEYS = {
    "ticker": lambda t: t.symbol,
    "change": lambda t: t.change,
    "method": lambda t: t.method,
    "mae_ratio": lambda t: t.mae_ratio,
    "as_of": lambda t: t.as_of,
    "last_run": lambda t: t.step_status,
}


def sort_states(states: list[storage.TickerState], sort: str) -> list[storage.TickerState]:
    """`states` (by symbol, as storage.ticker_states gives them) sorted by one column
    (descending with a leading '-'), ties by symbol; missing values (no forecast, no model, NaN)
    last either way."""
    if sort == "ticker":
        return states
    descending = sort.startswith("-")
    key = _SORT_KEYS[sort.lstrip("-")]

    def known(t: storage.TickerState) -> bool:
        v = key(t)
        return v is not None and not (isinstance(v, float) and math.isnan(v))

    present = [t for t in states if known(t)]
    present.sort(key=key, reverse=descending)  # stable: ties stay by symbol
    return present + [t for t in states if not known(t)]


def universe(
    states: list[storage.TickerState], last_session: date, run: storage.LastRun | None
) -> schemas.Universe:
    methods: dict[str, int] = {}
    for t in states:
        if t.as_of is not None and t.method is not None:
            methods[t.method] = methods.get(t.method, 0) + 1
    night = None
    if run is not None:
        seconds = None
        if run.finished_at is not None:
            seconds = num((run.finished_at - run.started_at).total_seconds(), 1)
        night = schemas.LastNight.model_validate(
            {**dataclasses.asdict(run), "duration_seconds": seconds}
        )
    return schemas.Universe(
        tickers=len(states),
        tracked=sum(t.tracked for t in states),
        served_by_network=methods.get("lstm", 0),
        stale=sum(t.stale(last_session) for t in states),
        failed=sum(t.step_status == "failed" for t in states),
        suspect=sum(t.suspect for t in states),
        methods=methods,
        last_night=night,
    )


@route(
    bp,
    Operation(
        "/v1/series/<ticker>",
        "getSeries",
        "Chart columns: closes, forecasts, intervals, realized errors",
        "Series",
        schemas.Series,
        queries.SeriesQuery,
        description="Closes in [start, end] and the forecasts whose target date falls in it, "
        "oldest first, as columns (what the ticker page draws). At most the newest `limit` of "
        "each; `truncated` says when more exist. The whole history (no parameter) is a document "
        "the pipeline stores when the ticker's data changes, read in one query and sent "
        "gzip-compressed to a client that accepts gzip.",
        not_found="Unknown ticker.",
        replayed=True,
    ),
)
def series(ticker: str) -> Response:
    symbol = ticker_param(ticker)
    query = parse_query(queries.SeriesQuery)
    start, end, limit = query.start, query.end, query.limit
    if start is None and end is None and limit == queries.SERIES_MAX_LIMIT:
        stored = series_document.read(db(), symbol)  # the whole history: one read
        if stored is not None:
            return _gzipped(stored)
    row = ticker_or_404(symbol)
    body = dumps(series_document.render(db(), row, start, end, limit)).encode()
    return Response(body, mimetype="application/json")


def _gzipped(stored: bytes) -> Response:
    """A stored document as it is when the client takes gzip, else decompressed."""
    if request.accept_encodings["gzip"]:
        response = Response(stored, mimetype="application/json")
        response.headers["Content-Encoding"] = "gzip"
    else:
        response = Response(gzip.decompress(stored), mimetype="application/json")
    response.vary.add("Accept-Encoding")
    return response
