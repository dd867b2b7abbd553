"""GET /v1/prices/<ticker>?start=&end=&limit="""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from sqlalchemy import select

from api.context import db, state
from api.params import date_range, int_arg, reject_unknown, ticker_param
from api.serialize import price
from forecaster import storage
from forecaster.errors import UnknownTicker

bp = Blueprint("prices", __name__)


@bp.get("/v1/prices/<ticker>")
def list_prices(ticker: str) -> Response:
    """Rows in [start, end], oldest first, at most `limit`. Without start: the newest `limit` rows."""
    symbol = ticker_param(ticker)
    reject_unknown(("start", "end", "limit"))
    start, end = date_range()
    limit = int_arg("limit", 100, 1, state().settings.api_max_limit)
    t = storage.get_ticker(db(), symbol)
    if t is None:
        raise UnknownTicker(symbol, "not tracked by this service")
    P = storage.Price
    query = select(P).where(P.ticker_id == t.id)
    if start:
        query = query.where(P.date >= start)
    if end:
        query = query.where(P.date <= end)
    if start is None:
        rows = list(db().scalars(query.order_by(P.date.desc()).limit(limit + 1)))
        truncated = len(rows) > limit
        rows = list(reversed(rows[:limit]))
    else:
        rows = list(db().scalars(query.order_by(P.date).limit(limit + 1)))
        truncated = len(rows) > limit
        rows = rows[:limit]
    return jsonify(
        {
            "ticker": symbol,
            "count": len(rows),
            "limit": limit,
            "truncated": truncated,
            "prices": [price(r) for r in rows],
        }
    )
