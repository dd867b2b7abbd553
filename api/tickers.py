"""GET /v1/tickers: every stored ticker, paginated and filterable, ordered by symbol."""

from __future__ import annotations

import re

from flask import Blueprint, Response, jsonify, request

from api.context import db, state
from api.errors import ApiError
from api.params import int_arg, reject_unknown, shown
from api.serialize import iso, num
from forecaster import storage

bp = Blueprint("tickers", __name__)

_QUERY = re.compile(r"\^?[A-Za-z0-9.\-=]{1,20}")  # a piece of a symbol (the ticker rule's alphabet)


def _tracked_arg() -> bool | None:
    raw = request.args.get("tracked")
    if raw is None:
        return None
    if raw not in ("true", "false"):
        raise ApiError(400, "bad_parameter", f"tracked must be true or false, got {shown(raw)}")
    return raw == "true"


def _query_arg() -> str | None:
    raw = request.args.get("q")
    if raw is None:
        return None
    if not _QUERY.fullmatch(raw):
        raise ApiError(
            400,
            "bad_parameter",
            f"q must be 1 to 20 symbol characters (A-Z 0-9 . - = ^), got {shown(raw)}",
        )
    return raw.upper()


@bp.get("/v1/tickers")
def list_tickers() -> Response:
    reject_unknown(("q", "tracked", "limit", "offset"))
    contains, tracked = _query_arg(), _tracked_arg()
    limit = int_arg("limit", 100, 1, state().settings.api_max_limit)
    offset = int_arg("offset", 0, 0, 10_000_000)
    session = db()
    total = storage.count_tickers(session, tracked=tracked, contains=contains)
    rows = storage.ticker_overview(
        session, tracked=tracked, contains=contains, limit=limit, offset=offset
    )
    next_offset = offset + len(rows) if offset + len(rows) < total else None
    return jsonify(
        {
            "total": total,
            "limit": limit,
            "offset": offset,
            "next_offset": next_offset,
            "tickers": [
                {
                    "ticker": r.symbol,
                    "tracked": r.tracked,
                    "provider": r.provider,
                    "rows": r.rows,
                    "first_date": iso(r.first_date),
                    "last_date": iso(r.last_date),
                    "last_close": num(r.last_close, 4),
                    "champion_version": r.champion_version,
                    "last_forecast": None
                    if r.forecast_as_of is None
                    else {
                        "as_of": iso(r.forecast_as_of),
                        "target_date": iso(r.forecast_target),
                        "predicted_close": num(r.forecast_close, 4),
                        "method": r.forecast_method,
                    },
                    "last_run_status": r.last_step_status,
                }
                for r in rows
            ],
        }
    )
