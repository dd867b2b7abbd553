"""GET /v1/runs: pipeline runs and their per-ticker steps, newest first (`ticker`: only the runs
that had a step for it)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from api.context import db
from api.params import int_arg, reject_unknown, ticker_param
from api.serialize import iso, num
from forecaster import storage
from forecaster.errors import public_error

bp = Blueprint("runs", __name__)


@bp.get("/v1/runs")
def list_runs() -> Response:
    reject_unknown(("limit", "offset", "ticker"))
    limit = int_arg("limit", 20, 1, 200)
    offset = int_arg("offset", 0, 0, 10_000_000)
    raw_ticker = request.args.get("ticker")
    ticker = None if raw_ticker is None else ticker_param(raw_ticker)
    total, runs = storage.job_runs(db(), limit, offset, ticker)
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
                            "worker": s.worker,
                        }
                        for s in r.steps
                    ],
                }
                for r in runs
            ],
        }
    )
