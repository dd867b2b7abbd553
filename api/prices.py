"""GET /v1/prices/<ticker>?start=&end=&limit="""

from __future__ import annotations

from flask import Blueprint, Response

import api.queries as queries
import api.schemas as schemas
from api.context import db, state, ticker_or_404
from api.params import parse_query, respond, ticker_param
from api.routes import Operation, route
from forecaster import storage

bp = Blueprint("prices", __name__)


@route(
    bp,
    Operation(
        "/v1/prices/<ticker>",
        "listPrices",
        "Stored daily OHLCV",
        "Prices",
        schemas.PricePage,
        queries.PriceQuery,
        description="Rows in [start, end], oldest first, at most `limit`; without start, the "
        "newest `limit` rows.",
        not_found="Unknown ticker.",
    ),
)
def list_prices(ticker: str) -> Response:
    """Rows in [start, end], oldest first, at most `limit`. Without start: the newest `limit` rows."""
    symbol = ticker_param(ticker)
    query = parse_query(queries.PriceQuery, state().settings.api_max_limit)
    t = ticker_or_404(symbol)
    rows, truncated = storage.price_page(db(), t.id, query.start, query.end, query.limit)
    return respond(
        schemas.PricePage(
            ticker=symbol,
            count=len(rows),
            limit=query.limit,
            truncated=truncated,
            prices=[schemas.Price.model_validate(r, from_attributes=True) for r in rows],
        )
    )
