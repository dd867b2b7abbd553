"""GET /v1/forecasts/<ticker> and /v1/forecasts/<ticker>/history"""

from __future__ import annotations

import dataclasses

from flask import Blueprint, Flask, Response, current_app, request
from flask.json.provider import DefaultJSONProvider

import api.queries as queries
import api.schemas as schemas
from api.context import db, state, ticker_or_404
from api.errors import ApiError
from api.params import parse_query, respond, ticker_param
from api.routes import Operation, route
from api.serialize import forecast
from forecaster import forecast_record, storage
from forecaster.predict import live_figures

bp = Blueprint("forecasts", __name__)


@route(
    bp,
    Operation(
        "/v1/forecasts/<ticker>",
        "getForecast",
        "Latest next-trading-day close forecast",
        "Forecast",
        schemas.Forecast,
        queries.NoQuery,
        description="The newest stored forecast with its prediction interval, the last actual "
        "close (which is also the persistence baseline's forecast) and the model's walk-forward "
        "MAE as a ratio to persistence (below 1 means it beat 'tomorrow = today').",
        not_found="Unknown ticker, or no forecast yet.",
        statuses={"304": "Not modified (If-None-Match matched the ETag)."},
        replayed=True,
    ),
)
def latest(ticker: str) -> Response:
    symbol = ticker_param(ticker)
    if request.query_string:  # no parameter is allowed: only a query string can fail
        parse_query(queries.NoQuery)
    return Response(_render_latest(symbol), mimetype="application/json")


def _render_latest(symbol: str) -> bytes:
    """The body: the document stored with the prediction (one indexed read, no ORM session),
    or, for rows stored without one, rendered from the rows."""
    with state().reader.connect() as conn:  # inside the request's database deadline
        found = storage.latest_document(conn, symbol)
    if found is not None:
        document = found[0]  # kept current when its version is promoted or retired
        if document is not None and sends_stored_bytes(current_app):
            return document.encode()
        row = storage.latest_forecast(db(), symbol)  # one query
        if row is not None:
            prediction, version = row
            ticker = ticker_or_404(symbol)
            record, demoted = live_figures(db(), ticker, version)
            return respond(forecast(symbol, prediction, version, record, demoted)).get_data()
    ticker_or_404(symbol)
    raise ApiError(
        404, "no_forecast", f"{symbol}: no forecast yet; run `stockcast predict {symbol}`"
    )


@route(
    bp,
    Operation(
        "/v1/forecasts/<ticker>/history",
        "getForecastHistory",
        "The forecast record, live and backtest, with the actual close",
        "Forecast record, newest first",
        schemas.ForecastHistory,
        queries.HistoryQuery,
        description="Live: each night's served forecast. Backtest: every method's out-of-sample "
        "forecast from the newest full backtest, with the interval it was scored with. Newest "
        "first by as-of day. JSON pages with `limit`/`offset`; `format=csv` (or `Accept: "
        "text/csv`) returns every matching row as CSV with the columns of HistoryItem (interval "
        "as low, high, coverage).",
        not_found="Unknown ticker.",
        csv=",".join(forecast_record.COLUMNS),
    ),
)
def history(ticker: str) -> Response:
    symbol = ticker_param(ticker)
    query = parse_query(queries.HistoryQuery, state().settings.api_max_limit)
    t = ticker_or_404(symbol)
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


def sends_stored_bytes(app: Flask) -> bool:
    """Whether the app's JSON provider writes what documents.dumps stored (Flask's default
    provider in production, keys unsorted); in debug mode or with compact=False it indents, and
    the view renders the rows instead."""
    provider = app.json
    return (
        isinstance(provider, DefaultJSONProvider)
        and provider.ensure_ascii
        and not provider.sort_keys
        and (provider.compact is True or (provider.compact is None and not app.debug))
    )
