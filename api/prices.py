"""GET /v1/prices/<ticker>?start=&end=&limit="""

from __future__ import annotations

from flask import Blueprint, Response

import api.queries as queries
import api.schemas as schemas
from api.context import db, state
from api.params import parse_query, respond, ticker_param
from api.serialize import price
from forecaster import storage
from forecaster.errors import UnknownTicker

bp = Blueprint("prices", __name__)


@bp.get("/v1/prices/<ticker>")
def list_prices(ticker: str) -> Response:
    """Rows in [start, end], oldest first, at most `limit`. Without start: the newest `limit` rows."""
    symbol = ticker_param(ticker)
    query = parse_query(queries.PriceQuery, state().settings.api_max_limit)
    t = storage.get_ticker(db(), symbol)
    if t is None:
        raise UnknownTicker(symbol, "not tracked by this service")
    rows, truncated = storage.price_page(db(), t.id, query.start, query.end, query.limit)
    return respond(
        schemas.PricePage(
            ticker=symbol,
            count=len(rows),
            limit=query.limit,
            truncated=truncated,
            prices=[price(r) for r in rows],
        )
    )
