"""GET /v1/runs: pipeline runs and their per-ticker steps, newest first."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from api import db
from api.params import int_arg, reject_unknown
from api.serialize import iso, num
from forecaster import storage
from forecaster.errors import public_error

bp = Blueprint("runs", __name__)


@bp.get("/v1/runs")
def list_runs() -> Response:
    reject_unknown(("limit", "offset"))
    limit = int_arg("limit", 20, 1, 200)
    offset = int_arg("offset", 0, 0, 10_000_000)
    session = db()
    total = session.scalar(select(func.count()).select_from(storage.JobRun)) or 0
    runs = session.scalars(
        select(storage.JobRun)
        .options(selectinload(storage.JobRun.steps))
        .order_by(storage.JobRun.started_at.desc(), storage.JobRun.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return jsonify(
        {
            "total": total,
            "limit": limit,
            "offset": offset,
            "runs": [
                {
                    "id": r.id,
                    "kind": r.kind,
                    "trigger": r.trigger,
                    "status": r.status,
                    "started_at": iso(r.started_at),
                    "finished_at": iso(r.finished_at),
                    "tickers": list(r.tickers or []),
                    # Never the stored text: it may hold paths, SQL or host names.
                    "error_code": r.error_code,
                    "error": public_error(r.error_code, r.error),
                    "steps": [
                        {
                            "ticker": s.ticker,
                            "status": s.status,
                            "started_at": iso(s.started_at),
                            "finished_at": iso(s.finished_at),
                            "duration_seconds": num(s.duration_seconds, 3),
                            "rows_fetched": s.rows_fetched,
                            "rows_inserted": s.rows_inserted,
                            "rows_rejected": s.rows_rejected,
                            "model_version_id": s.model_version_id,
                            "promoted": s.promoted,
                            "detail": s.detail,
                            "error_code": s.error_code,
                            "error": public_error(s.error_code, s.error),
                        }
                        for s in r.steps
                    ],
                }
                for r in runs
            ],
        }
    )
