"""GET /v1/runs: pipeline runs and their per-ticker steps, newest first (`ticker`: only the runs
that had a step for it)."""

from __future__ import annotations

from flask import Blueprint, Response

import api.queries as queries
import api.schemas as schemas
from api.context import db
from api.params import parse_query, respond
from api.routes import Operation, route
from forecaster import storage

bp = Blueprint("runs", __name__)


@route(
    bp,
    Operation(
        "/v1/runs",
        "listRuns",
        "Pipeline runs and their per-ticker steps, newest first",
        "Runs",
        schemas.RunPage,
        queries.RunQuery,
    ),
)
def list_runs() -> Response:
    query = parse_query(queries.RunQuery)
    total, runs = storage.job_runs(db(), query.limit, query.offset, query.ticker)
    return respond(
        schemas.RunPage(
            total=total,
            limit=query.limit,
            offset=query.offset,
            runs=[schemas.Run.model_validate(r, from_attributes=True) for r in runs],
        )
    )
