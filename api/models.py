"""GET /v1/models/<ticker>"""

from __future__ import annotations

from flask import Blueprint, Response

import api.schemas as schemas
from api.context import db
from api.params import parse_query, respond, ticker_param
from api.serialize import model_version
from forecaster import storage
from forecaster.errors import UnknownTicker

bp = Blueprint("models", __name__)


@bp.get("/v1/models/<ticker>")
def list_models(ticker: str) -> Response:
    symbol = ticker_param(ticker)
    parse_query(schemas.NoQuery)
    row = storage.get_ticker(db(), symbol)
    if row is None:
        raise UnknownTicker(symbol, "not tracked by this service")
    versions = storage.model_versions(db(), row.id)[:100]  # bounded: newest 100 versions
    champion = next((v.version for v in versions if v.status == "champion"), None)
    return respond(
        schemas.ModelList(
            ticker=symbol,
            champion_version=champion,
            models=[model_version(v) for v in versions],
        )
    )
