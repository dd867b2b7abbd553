"""GET /v1/prices/<ticker>?start=&end=&limit="""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

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
    rows, truncated = storage.price_page(db(), t.id, start, end, limit)
    return jsonify(
        {
            "ticker": symbol,
            "count": len(rows),
            "limit": limit,
            "truncated": truncated,
            "prices": [price(r) for r in rows],
        }
    )
