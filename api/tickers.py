"""GET /v1/tickers: every stored ticker, paginated and filterable, ordered by symbol."""

from __future__ import annotations

from flask import Blueprint, Response

import api.queries as queries
import api.schemas as schemas
from api.context import db, state
from api.params import parse_query, respond
from api.routes import Operation, route
from api.serialize import num
from forecaster import storage

bp = Blueprint("tickers", __name__)


@route(
    bp,
    Operation(
        "/v1/tickers",
        "listTickers",
        "Tickers, tracked or not, ordered by symbol",
        "Tickers",
        schemas.TickerPage,
        queries.TickerQuery,
        description="Every stored ticker with its tracked flag, data range, last close, champion "
        "model version, newest forecast and newest pipeline step status. Paginated (follow "
        "next_offset) and filterable by symbol and tracked state.",
    ),
)
def list_tickers() -> Response:
    query = parse_query(queries.TickerQuery, state().settings.api_max_limit)
    contains, tracked = query.q, query.tracked
    limit, offset = query.limit, query.offset
    session = db()
    total = storage.count_tickers(session, tracked=tracked, contains=contains)
    rows = storage.ticker_overview(
        session, tracked=tracked, contains=contains, limit=limit, offset=offset
    )
    next_offset = offset + len(rows) if offset + len(rows) < total else None
    return respond(
        schemas.TickerPage(
            total=total,
            limit=limit,
            offset=offset,
            next_offset=next_offset,
            tickers=[
                schemas.Ticker(
                    ticker=r.symbol,
                    tracked=r.tracked,
                    provider=r.provider,
                    rows=r.rows,
                    first_date=r.first_date,
                    last_date=r.last_date,
                    last_close=num(r.last_close, 4),
                    champion_version=r.champion_version,
                    last_forecast=None
                    if r.forecast_as_of is None or r.forecast_target is None
                    else schemas.LastForecast(
                        as_of=r.forecast_as_of,
                        target_date=r.forecast_target,
                        predicted_close=num(r.forecast_close, 4),
                        method=r.forecast_method,
                    ),
                    last_run_status=r.last_step_status,
                )
                for r in rows
            ],
        )
    )
