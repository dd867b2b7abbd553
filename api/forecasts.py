"""GET /v1/forecasts/<ticker> and /v1/forecasts/<ticker>/history"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify
from sqlalchemy import and_, func, select
from sqlalchemy.orm import aliased

from api.context import db, state
from api.errors import ApiError
from api.params import date_range, int_arg, reject_unknown, ticker_param
from api.serialize import forecast, iso, num
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
    reject_unknown(())
    cache = state().responses
    body = cache.get(symbol)
    if body is None:
        body = _render_latest(symbol)
        cache.put(symbol, body)
    return Response(body, mimetype="application/json")


def _render_latest(symbol: str) -> bytes:
    # One query: ticker -> newest prediction -> its model version.
    row = (
        db()
        .execute(
            select(storage.Prediction, storage.ModelVersion)
            .join(storage.Ticker, storage.Ticker.id == storage.Prediction.ticker_id)
            .join(
                storage.ModelVersion, storage.ModelVersion.id == storage.Prediction.model_version_id
            )
            .where(storage.Ticker.symbol == symbol)
            .order_by(storage.Prediction.as_of_date.desc())
            .limit(1)
        )
        .first()
    )
    if row is None:
        _require_ticker(symbol)
        raise ApiError(
            404, "no_forecast", f"{symbol}: no forecast yet; run `stockcast predict {symbol}`"
        )
    prediction, version = row
    # Flask's own JSON rendering, so the body is byte-for-byte what jsonify would send.
    return current_app.json.response(forecast(symbol, prediction, version)).get_data()


@bp.get("/v1/forecasts/<ticker>/history")
def history(ticker: str) -> Response:
    symbol = ticker_param(ticker)
    reject_unknown(("start", "end", "limit", "offset"))
    start, end = date_range()
    max_limit = state().settings.api_max_limit
    limit = int_arg("limit", 100, 1, max_limit)
    offset = int_arg("offset", 0, 0, 10_000_000)
    t = _require_ticker(symbol)
    P = storage.Prediction
    actual = aliased(storage.Price)
    conditions = [P.ticker_id == t.id]
    if start:
        conditions.append(P.as_of_date >= start)
    if end:
        conditions.append(P.as_of_date <= end)
    session = db()
    total = session.scalar(select(func.count()).select_from(P).where(*conditions)) or 0
    rows = session.execute(
        select(P, storage.ModelVersion.version, actual.close)
        .join(storage.ModelVersion, storage.ModelVersion.id == P.model_version_id)
        .outerjoin(actual, and_(actual.ticker_id == P.ticker_id, actual.date == P.target_date))
        .where(*conditions)
        .order_by(P.as_of_date.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    items = []
    for p, version, actual_close in rows:
        error = None if actual_close is None else p.predicted_close - actual_close
        items.append(
            {
                "as_of": iso(p.as_of_date),
                "target_date": iso(p.target_date),
                "predicted_close": num(p.predicted_close, 4),
                "interval": {
                    "low": num(p.lower, 4),
                    "high": num(p.upper, 4),
                    "coverage": num(p.coverage, 4),
                },
                "last_close": num(p.last_close, 4),
                "actual_close": num(actual_close, 4),
                "error": num(error, 4),
                "abs_error": None if error is None else num(abs(error), 4),
                "persistence_abs_error": None
                if actual_close is None
                else num(abs(p.last_close - actual_close), 4),
                "within_interval": None
                if actual_close is None
                else bool(p.lower <= actual_close <= p.upper),
                "method": p.method,
                "model_version": version,
            }
        )
    next_offset = offset + len(items) if offset + len(items) < total else None
    return jsonify(
        {
            "ticker": symbol,
            "total": total,
            "limit": limit,
            "offset": offset,
            "next_offset": next_offset,
            "forecasts": items,
        }
    )
