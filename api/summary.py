"""GET /v1/summary (one row per ticker, for the dashboard) and GET /v1/series/<ticker> (chart
columns: closes, forecasts with their intervals, realized closes and errors).

The pages read these endpoints like any other client: one source for the numbers they show.
"""

from __future__ import annotations

import math
import unicodedata
from datetime import date
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from api.context import db, state
from api.errors import ApiError
from api.params import date_range, int_arg, reject_unknown, shown, ticker_param
from api.serialize import iso, num
from forecaster import calendar, storage
from forecaster.errors import UnknownTicker, public_error

bp = Blueprint("summary", __name__)

SUMMARY_MAX_LIMIT = 500
SERIES_MAX_LIMIT = 20_000  # 80 years of sessions: a whole history fits one response
Q_MAX_LENGTH = 40


def search_arg(name: str = "q") -> str | None:
    """A short free-text search term; control characters are refused (PostgreSQL refuses NUL)."""
    raw = request.args.get(name)
    if raw is None or raw.strip() == "":
        return None
    if len(raw) > Q_MAX_LENGTH or any(unicodedata.category(c) == "Cc" for c in raw):
        raise ApiError(
            400,
            "bad_parameter",
            f"{name} must be at most {Q_MAX_LENGTH} printable characters, got {shown(raw)}",
        )
    return raw.strip()


def skill(mv: storage.ModelVersion | None) -> dict[str, Any] | None:
    """The network's backtest against persistence and the best baseline (legacy versions: only
    the stored MAE ratio)."""
    if mv is None:
        return None
    bt = mv.metrics.get("backtest") if isinstance(mv.metrics, dict) else None
    bt = bt if isinstance(bt, dict) else {}
    return {
        "model_version": mv.version,
        "method": mv.method,
        "mae_ratio": num(bt.get("mae_ratio", mv.mae_ratio)),
        "dm_pvalue": num(bt.get("dm_pvalue")),
        "best_baseline": bt.get("best_baseline"),
        "best_baseline_mae_ratio": num(bt.get("best_baseline_mae_ratio")),
        "dm_best_pvalue": num(bt.get("dm_best_pvalue")),
        "n_forecasts": bt.get("n_forecasts"),
        "backtest_end": bt.get("end"),
    }


def freshness(
    prediction: storage.Prediction | None, last_date: date | None, last_session: date, cal: str
) -> dict[str, Any]:
    """Stale: no forecast, or one made before the last exchange session (or the newest close)."""
    if prediction is None:
        return {
            "forecast_as_of": None,
            "last_session": iso(last_session),
            "sessions_behind": None,
            "behind_data": last_date is not None,
            "stale": True,
        }
    behind = calendar.sessions_between(prediction.as_of_date, last_session, cal)
    behind_data = last_date is not None and prediction.as_of_date < last_date
    return {
        "forecast_as_of": iso(prediction.as_of_date),
        "last_session": iso(last_session),
        "sessions_behind": behind,
        "behind_data": behind_data,
        "stale": behind > 0 or behind_data,
    }


def last_run(step: storage.JobStep | None) -> dict[str, Any] | None:
    if step is None:
        return None
    return {
        "run_id": step.run_id,
        "status": step.status,
        "started_at": iso(step.started_at),
        "finished_at": iso(step.finished_at),
        "duration_seconds": num(step.duration_seconds, 3),
        "detail": step.detail,
        "error_code": step.error_code,
        "error": public_error(step.error_code, step.error),
    }


def summary_row(row: storage.DashboardRow, last_session: date, cal: str) -> dict[str, Any]:
    p = row.prediction
    forecast = None
    if p is not None:
        forecast = {
            "as_of": iso(p.as_of_date),
            "target_date": iso(p.target_date),
            "predicted_close": num(p.predicted_close, 4),
            "predicted_change_pct": num((p.predicted_close / p.last_close - 1.0) * 100.0, 4),
            "interval": {
                "low": num(p.lower, 4),
                "high": num(p.upper, 4),
                "coverage": num(p.coverage, 4),
            },
            "last_close": num(p.last_close, 4),
            "method": p.method,
        }
    return {
        "ticker": row.ticker.symbol,
        "name": row.ticker.name,
        "last_date": iso(row.last_date),
        "last_close": num(row.last_close, 4),
        "recent_closes": [num(c, 4) for c in row.recent_closes],
        "forecast": forecast,
        "skill": skill(row.model),
        "freshness": freshness(p, row.last_date, last_session, cal),
        "last_run": last_run(row.last_step),
    }


@bp.get("/v1/summary")
def summary() -> Response:
    reject_unknown(("q", "limit", "offset"))
    q = search_arg()
    limit = int_arg("limit", 50, 1, SUMMARY_MAX_LIMIT)
    offset = int_arg("offset", 0, 0, 10_000_000)
    settings = state().settings
    last_session = calendar.last_session_before(
        calendar.exchange_today(settings), settings.exchange_calendar
    )
    total, rows = storage.dashboard_rows(db(), q, limit, offset)
    return jsonify(
        {
            "last_session": iso(last_session),
            "total": total,
            "limit": limit,
            "offset": offset,
            "next_offset": offset + len(rows) if offset + len(rows) < total else None,
            "tickers": [summary_row(r, last_session, settings.exchange_calendar) for r in rows],
        }
    )


@bp.get("/v1/series/<ticker>")
def series(ticker: str) -> Response:
    symbol = ticker_param(ticker)
    reject_unknown(("start", "end", "limit"))
    start, end = date_range()
    limit = int_arg("limit", SERIES_MAX_LIMIT, 1, SERIES_MAX_LIMIT)
    row = storage.get_ticker(db(), symbol)
    if row is None:
        raise UnknownTicker(symbol, "not tracked by this service")
    key = f"series:{symbol}:{start}:{end}:{limit}"
    cache = state().responses  # the same short per-worker TTL as the latest forecast
    body = cache.get(key)
    if body is None:
        body = current_app.json.response(_series(symbol, row.id, start, end, limit)).get_data()
        cache.put(key, body)
    return Response(body, mimetype="application/json")


def _column(values: list[float | None], digits: int = 4) -> list[float | None]:
    """num() over a column, inlined: a whole history is tens of thousands of values."""
    return [round(v, digits) if v is not None and math.isfinite(v) else None for v in values]


def _series(
    symbol: str, ticker_id: int, start: date | None, end: date | None, limit: int
) -> dict[str, Any]:
    data = storage.chart_series(db(), ticker_id, start, end, limit)
    fc = data.forecasts
    actual = [f.actual_close for f in fc]
    return {
        "ticker": symbol,
        "start": iso(start),
        "end": iso(end),
        "truncated": data.truncated,
        "closes": {
            "date": [d.isoformat() for d in data.dates],
            "close": _column(data.closes),
        },
        "forecasts": {
            "as_of": [f.as_of_date.isoformat() for f in fc],
            "target_date": [f.target_date.isoformat() for f in fc],
            "predicted_close": _column([f.predicted_close for f in fc]),
            "low": _column([f.lower for f in fc]),
            "high": _column([f.upper for f in fc]),
            "coverage": _column([f.coverage for f in fc]),
            "method": [f.method for f in fc],
            "actual_close": _column(actual),
            "abs_error": _column(
                [
                    None if a is None else abs(f.predicted_close - a)
                    for f, a in zip(fc, actual, strict=True)
                ]
            ),
            "persistence_abs_error": _column(
                [
                    None if a is None else abs(f.last_close - a)
                    for f, a in zip(fc, actual, strict=True)
                ]
            ),
        },
    }
