"""GET /v1/runs: pipeline runs and their per-ticker steps, newest first (`ticker`: only the runs
that had a step for it)."""

from __future__ import annotations

from flask import Blueprint, Response

import api.queries as queries
import api.schemas as schemas
from api.context import db
from api.params import parse_query, respond
from api.serialize import num
from forecaster import storage
from forecaster.errors import public_error

bp = Blueprint("runs", __name__)


@bp.get("/v1/runs")
def list_runs() -> Response:
    query = parse_query(queries.RunQuery)
    total, runs = storage.job_runs(db(), query.limit, query.offset, query.ticker)
    return respond(
        schemas.RunPage(
            total=total,
            limit=query.limit,
            offset=query.offset,
            runs=[
                schemas.Run(
                    id=r.id,
                    kind=r.kind,
                    trigger=r.trigger,
                    status=r.status,
                    started_at=r.started_at,
                    finished_at=r.finished_at,
                    tickers=list(r.tickers or []),
                    # Never the stored text: it may hold paths, SQL or host names.
                    error_code=r.error_code,
                    error=public_error(r.error_code, r.error),
                    steps=[
                        schemas.Step(
                            ticker=s.ticker,
                            status=s.status,
                            started_at=s.started_at,
                            finished_at=s.finished_at,
                            duration_seconds=num(s.duration_seconds, 3),
                            rows_fetched=s.rows_fetched,
                            rows_inserted=s.rows_inserted,
                            rows_rejected=s.rows_rejected,
                            model_version_id=s.model_version_id,
                            promoted=s.promoted,
                            detail=s.detail,
                            error_code=s.error_code,
                            error=public_error(s.error_code, s.error),
                            worker=s.worker,
                        )
                        for s in r.steps
                    ],
                )
                for r in runs
            ],
        )
    )
