"""GET /v1/forecasts/<ticker> and /v1/forecasts/<ticker>/history"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request

import api.schemas as schemas
from api.cache import Rendered
from api.context import db, state
from api.errors import ApiError
from api.fastpath import READ_KEY, sends_stored_bytes, stored_body
from api.params import parse_query, respond, ticker_param
from api.serialize import forecast, interval, num
from forecaster import storage
from forecaster.errors import UnknownTicker
from forecaster.predict import live_figures

bp = Blueprint("forecasts", __name__)
_UNREAD = object()  # no read was done before Flask


def _require_ticker(symbol: str) -> storage.Ticker:
    row = storage.get_ticker(db(), symbol)
    if row is None:
        raise UnknownTicker(symbol, "not tracked by this service")
    return row


@bp.get("/v1/forecasts/<ticker>")
def latest(ticker: str) -> Response:
    symbol = ticker_param(ticker)
    if request.args:  # no parameter is allowed: only a query string can fail
        parse_query(schemas.NoQuery)
    cache = state().responses
    rendered = cache.get(symbol)
    if rendered is None:
        rendered = Rendered.of(_render_latest(symbol))
        cache.put(symbol, rendered)
    response = Response(rendered.body, mimetype="application/json")
    response.headers["ETag"] = rendered.etag  # computed once per render (api/__init__.py)
    return response


def _render_latest(symbol: str) -> bytes:
    """The body: the document stored with the prediction (one indexed read, usually done by
    api/fastpath.py before Flask), its model status brought up to date, or, for rows stored
    before documents existed, rendered from the rows."""
    found = request.environ.pop(READ_KEY, _UNREAD)
    if isinstance(found, Exception):  # the read before Flask failed: answer it, do not retry
        raise found
    if found is _UNREAD:
        with state().reader.connect() as conn:  # inside the request's database deadline
            found = storage.latest_document(conn, symbol)
    if found is not None:
        body = stored_body(found) if sends_stored_bytes(current_app) else None
        if body is not None:
            return body
        row = storage.latest_forecast(db(), symbol)  # one query
        if row is not None:
            prediction, version = row
            ticker = _require_ticker(symbol)
            record, demoted = live_figures(db(), ticker, version)
            return respond(forecast(symbol, prediction, version, record, demoted)).get_data()
    _require_ticker(symbol)
    raise ApiError(
        404, "no_forecast", f"{symbol}: no forecast yet; run `stockcast predict {symbol}`"
    )


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
                interval=interval(p, None),
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
