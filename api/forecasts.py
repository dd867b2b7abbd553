"""GET /v1/forecasts/<ticker> and /v1/forecasts/<ticker>/history"""

from __future__ import annotations

from flask import Blueprint, Response

import api.schemas as schemas
from api.context import db, state
from api.errors import ApiError
from api.params import parse_query, respond, ticker_param
from api.serialize import forecast, interval, num
from forecaster import storage
from forecaster.errors import UnknownTicker

bp = Blueprint("forecasts", __name__)


def _require_ticker(symbol: str) -> storage.Ticker:
    row = storage.get_ticker(db(), symbol)
    if row is None:
        raise UnknownTicker(symbol, "not tracked by this service")
    return row


@bp.get("/v1/forecasts/<ticker>")
def latest(ticker: str) -> Response:
    symbol = ticker_param(ticker)
    parse_query(schemas.NoQuery)
    cache = state().responses
    body = cache.get(symbol)
    if body is None:
        body = _render_latest(symbol)
        cache.put(symbol, body)
    return Response(body, mimetype="application/json")


def _render_latest(symbol: str) -> bytes:
    row = storage.latest_forecast(db(), symbol)  # one query
    if row is None:
        _require_ticker(symbol)
        raise ApiError(
            404, "no_forecast", f"{symbol}: no forecast yet; run `stockcast predict {symbol}`"
        )
    prediction, version = row
    return respond(forecast(symbol, prediction, version)).get_data()


@bp.get("/v1/forecasts/<ticker>/history")
def history(ticker: str) -> Response:
    symbol = ticker_param(ticker)
    query = parse_query(schemas.HistoryQuery, state().settings.api_max_limit)
    t = _require_ticker(symbol)
    limit, offset = query.limit, query.offset
    total, rows = storage.forecast_history(db(), t.id, query.start, query.end, limit, offset)
    items = []
    for p, version, actual_close in rows:
        error = None if actual_close is None else p.predicted_close - actual_close
        items.append(
            schemas.HistoryItem(
                as_of=p.as_of_date,
                target_date=p.target_date,
                predicted_close=num(p.predicted_close, 4),
                interval=interval(p),
                last_close=num(p.last_close, 4),
                actual_close=num(actual_close, 4),
                error=num(error, 4),
                abs_error=None if error is None else num(abs(error), 4),
                persistence_abs_error=None
                if actual_close is None
                else num(abs(p.last_close - actual_close), 4),
                within_interval=None
                if actual_close is None
                else bool(p.lower <= actual_close <= p.upper),
                method=p.method,
                model_version=version,
            )
        )
    next_offset = offset + len(items) if offset + len(items) < total else None
    return respond(
        schemas.ForecastHistory(
            ticker=symbol,
            total=total,
            limit=limit,
            offset=offset,
            next_offset=next_offset,
            forecasts=items,
        )
    )
