"""GET /v1/forecasts/<ticker> and /v1/forecasts/<ticker>/history"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request
from flask.json.provider import DefaultJSONProvider

import api.schemas as schemas
from api.cache import Rendered
from api.context import db, state
from api.errors import ApiError
from api.params import parse_query, respond, ticker_param
from api.serialize import forecast, interval, num
from forecaster import documents, storage
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
    """The body: the document stored with the prediction (one indexed read), its model status
    brought up to date, or, for rows stored before documents existed, rendered from the rows."""
    with state().engine.connect() as conn:  # inside the request's database deadline
        found = storage.latest_document(conn, symbol)
    if found is not None:
        document, status = found
        if document is not None and _sends_stored_bytes():
            # Written by the champion ("champion"); a later promotion retired that version.
            if status != "champion":
                document = documents.with_status(document, status)
            return document.encode()
        row = storage.latest_forecast(db(), symbol)  # one query
        if row is not None:
            prediction, version = row
            return respond(forecast(symbol, prediction, version)).get_data()
    _require_ticker(symbol)
    raise ApiError(
        404, "no_forecast", f"{symbol}: no forecast yet; run `stockcast predict {symbol}`"
    )


def _sends_stored_bytes() -> bool:
    """Whether the app's JSON provider writes what documents.dumps stored (Flask's default
    provider in production, keys unsorted); in debug mode or with compact=False it indents, and
    the view renders the rows instead."""
    provider = current_app.json
    return (
        isinstance(provider, DefaultJSONProvider)
        and provider.ensure_ascii
        and not provider.sort_keys
        and (provider.compact is True or (provider.compact is None and not current_app.debug))
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
