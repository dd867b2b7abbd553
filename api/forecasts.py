"""GET /v1/forecasts/<ticker> and /v1/forecasts/<ticker>/history"""

from __future__ import annotations

import dataclasses

from flask import Blueprint, Response, current_app, request

import api.queries as queries
import api.schemas as schemas
from api.cache import Rendered
from api.context import db, state
from api.errors import ApiError
from api.fastpath import READ_KEY, sends_stored_bytes, stored_body
from api.params import parse_query, respond, ticker_param
from api.serialize import forecast
from forecaster import forecast_record, storage
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
        parse_query(queries.NoQuery)
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
    api/fastpath.py before Flask), or, for rows stored without one, rendered from the rows."""
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
    query = parse_query(queries.HistoryQuery, state().settings.api_max_limit)
    t = _require_ticker(symbol)
    kinds: tuple[forecast_record.Kind, ...] = (
        ("live", "backtest") if query.kind == "all" else (query.kind,)
    )
    as_csv = query.format == "csv" or (
        query.format is None
        and request.accept_mimetypes.best_match(["application/json", "text/csv"]) == "text/csv"
    )
    if as_csv:  # the whole matching record: a spreadsheet wants every row
        _, rows = forecast_record.page(
            db(), t.id, kinds=kinds, start=query.start, end=query.end, method=query.method
        )
        filename = f"{symbol.lstrip('^')}-forecasts.csv"
        return Response(
            forecast_record.to_csv(rows),
            mimetype="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
    limit, offset = query.limit, query.offset
    total, rows = forecast_record.page(
        db(),
        t.id,
        kinds=kinds,
        start=query.start,
        end=query.end,
        method=query.method,
        limit=limit,
        offset=offset,
    )
    next_offset = offset + len(rows) if offset + len(rows) < total else None
    return respond(
        schemas.ForecastHistory(
            ticker=symbol,
            total=total,
            limit=limit,
            offset=offset,
            next_offset=next_offset,
            forecasts=[_history_item(r) for r in rows],
        )
    )


def _history_item(r: forecast_record.RecordItem) -> schemas.HistoryItem:
    fields = dataclasses.asdict(r)
    low, high, coverage = fields.pop("low"), fields.pop("high"), fields.pop("coverage")
    box = None
    if low is not None and high is not None:
        box = {"low": low, "high": high, "coverage": coverage, "calibrated": None}
    return schemas.HistoryItem.model_validate({**fields, "interval": box})
