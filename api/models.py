"""GET /v1/models/<ticker>"""

from __future__ import annotations

from flask import Blueprint, Response

import api.queries as queries
import api.schemas as schemas
from api.context import db
from api.params import parse_query, respond, ticker_param
from api.serialize import model_version
from forecaster import documents, storage
from forecaster.errors import UnknownTicker
from forecaster.predict import live_figures

bp = Blueprint("models", __name__)


@bp.get("/v1/models/<ticker>")
def list_models(ticker: str) -> Response:
    symbol = ticker_param(ticker)
    parse_query(queries.NoQuery)
    row = storage.get_ticker(db(), symbol)
    if row is None:
        raise UnknownTicker(symbol, "not tracked by this service")
    versions = storage.model_versions(db(), row.id)[:100]  # bounded: newest 100 versions
    champion = next((v for v in versions if v.status == "champion"), None)
    record, demoted = live_figures(db(), row, champion) if champion else (None, False)
    return respond(
        schemas.ModelList(
            ticker=symbol,
            champion_version=champion.version if champion else None,
            live=documents.live(record, demoted),
            models=[model_version(v) for v in versions],
        )
    )
