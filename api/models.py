"""GET /v1/models/<ticker>"""

from __future__ import annotations

from flask import Blueprint, Response

import api.queries as queries
import api.schemas as schemas
from api.context import db, ticker_or_404
from api.params import parse_query, respond, ticker_param
from api.routes import Operation, route
from api.serialize import model_version
from forecaster import documents, storage
from forecaster.predict import live_figures

bp = Blueprint("models", __name__)


@route(
    bp,
    Operation(
        "/v1/models/<ticker>",
        "listModels",
        "Model versions with metrics, champion flag and rejection reasons",
        "Model versions, newest first (at most 100)",
        schemas.ModelList,
        queries.NoQuery,
        not_found="Unknown ticker.",
    ),
)
def list_models(ticker: str) -> Response:
    symbol = ticker_param(ticker)
    parse_query(queries.NoQuery)
    row = ticker_or_404(symbol)
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
