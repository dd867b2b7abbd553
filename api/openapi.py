"""The OpenAPI 3.0 description of every endpoint (kept beside api/serialize.py, which it mirrors)."""

from __future__ import annotations

from typing import Any

import forecaster
from forecaster.policy import BASELINES, METHODS
from forecaster.storage import RUN_STATUSES, STEP_STATUSES

TICKER_PATTERN = r"^\^?[A-Za-z0-9][A-Za-z0-9.\-=]{0,19}$"


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "nullable": True}


NUM = {"type": "number"}
INT = {"type": "integer"}
STR = {"type": "string"}
DATE = {"type": "string", "format": "date"}
DATETIME = {"type": "string", "format": "date-time"}


def _obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": props,
        "required": required if required is not None else list(props),
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref("Error")}}}


def _ok(description: str, schema: dict[str, Any], cached: bool = True) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }
    if cached:
        response["headers"] = {
            "ETag": {
                "description": "Strong validator of the body; send it back in If-None-Match.",
                "schema": STR,
            },
            "Cache-Control": {
                "description": "public, max-age=STOCKCAST_API_CACHE_MAX_AGE",
                "schema": STR,
            },
        }
    return response


TICKER_PARAM = {
    "name": "ticker",
    "in": "path",
    "required": True,
    "description": "Yahoo-style symbol, e.g. ^GSPC (URL-encoded as %5EGSPC), GOOG, BRK-B.",
    "schema": {"type": "string", "pattern": TICKER_PATTERN, "maxLength": 21},
}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


START = _query("start", DATE, "First date (inclusive), YYYY-MM-DD.")
END = _query("end", DATE, "Last date (inclusive), YYYY-MM-DD; must not be before start.")
OFFSET = _query(
    "offset",
    {"type": "integer", "minimum": 0, "maximum": 10_000_000, "default": 0},
    "Rows to skip.",
)


def _limit(default: int, maximum: int) -> dict[str, Any]:
    return _query(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": maximum, "default": default},
        "Page size.",
    )


COMMON_ERRORS = {
    "400": _error("Malformed ticker, date or parameter; unknown query parameter."),
    "405": _error("Method not allowed: the API is read-only (GET)."),
    "500": _error("Unexpected error (logged); never a stack trace."),
    "503": _error("The database is unavailable."),
}


def build_spec(max_limit: int = 1000) -> dict[str, Any]:
    interval = _obj({"low": NUM, "high": NUM, "coverage": NUM})
    nnum = _nullable(NUM)
    method = {"type": "string", "enum": list(METHODS)}
    baseline_figures = _obj({"mae": nnum, "rmse": nnum, "mape": nnum, "directional_accuracy": nnum})
    backtest = _obj(
        {
            "scheme": {"type": "string", "enum": ["rolling-origin"]},
            "folds": INT,
            "n_forecasts": INT,
            "start": DATE,
            "end": DATE,
            "mae": nnum,
            "rmse": nnum,
            "mape": nnum,
            "directional_accuracy": nnum,
            "persistence_mae": nnum,
            "mae_ratio": nnum,
            "best_baseline": {"type": "string", "enum": list(BASELINES)},
            "best_baseline_mae": nnum,
            "best_baseline_mae_ratio": nnum,
            "dm_stat": nnum,
            "dm_pvalue": nnum,
            "dm_best_stat": nnum,
            "dm_best_pvalue": nnum,
            "coverage": nnum,
            "coverage_by_method": {"type": "object", "additionalProperties": nnum},
            "nominal_coverage": nnum,
            "baselines": {"type": "object", "additionalProperties": baseline_figures},
        }
    )
    backtest["description"] = (
        "Rolling-origin (expanding window) backtest: the network refit at regular origins, every "
        "forecast one step ahead from a model that saw nothing after its origin. dm_stat and "
        "dm_pvalue: Diebold-Mariano test (absolute-error loss, Newey-West variance, HLN "
        "correction) of the network vs persistence; dm_best_*: vs the best baseline. p-values "
        "are one-sided for 'the network is more accurate'. coverage: out-of-sample share of "
        "actual closes inside the network's interval; coverage_by_method: the same for each "
        "method's own interval (the served method's is the one that applies to its forecasts)."
    )
    model_summary = _obj(
        {
            "version": INT,
            "status": {"type": "string", "enum": ["champion", "retired", "rejected"]},
            "method": method,
            "method_reason": _nullable(STR),
            "trained_at": DATETIME,
            "trained_through": _nullable(DATE),
            "mae": nnum,
            "persistence_mae": nnum,
            "mae_ratio_vs_persistence": nnum,
            "directional_accuracy": nnum,
            "test_start": DATE,
            "test_end": DATE,
            "backtest": _nullable(_ref("Backtest")),
        }
    )
    schemas = {
        "Error": _obj({"error": _obj({"code": STR, "message": STR})}),
        "Interval": interval,
        "Backtest": backtest,
        "ModelSummary": model_summary,
        "Forecast": _obj(
            {
                "ticker": STR,
                "as_of": DATE,
                "target_date": DATE,
                "predicted_close": NUM,
                "interval": _ref("Interval"),
                "last_close": NUM,
                "persistence_forecast": NUM,
                "predicted_change_pct": NUM,
                "method": method,
                "method_reason": _nullable(STR),
                "model": _ref("ModelSummary"),
                "created_at": DATETIME,
            }
        ),
        "HistoryItem": _obj(
            {
                "as_of": DATE,
                "target_date": DATE,
                "predicted_close": NUM,
                "interval": _ref("Interval"),
                "last_close": NUM,
                "actual_close": _nullable(NUM),
                "error": _nullable(NUM),
                "abs_error": _nullable(NUM),
                "persistence_abs_error": _nullable(NUM),
                "within_interval": _nullable({"type": "boolean"}),
                "method": method,
                "model_version": INT,
            }
        ),
        "ModelVersion": {
            "allOf": [
                _ref("ModelSummary"),
                _obj(
                    {
                        "champion": {"type": "boolean"},
                        "rejection_reason": _nullable(STR),
                        "promoted_at": _nullable(DATETIME),
                        "train_start": DATE,
                        "train_end": DATE,
                        "n_train": INT,
                        "train_seconds": nnum,
                        "interval_halfwidth_log": nnum,
                        "interval_coverage": nnum,
                        "config": {"type": "object"},
                        "evaluation": {"type": "object"},
                    }
                ),
            ]
        },
        "Price": _obj(
            {
                "date": DATE,
                "open": NUM,
                "high": NUM,
                "low": NUM,
                "close": NUM,
                "adj_close": _nullable(NUM),
                "volume": NUM,
                "source": STR,
                "adjusted": {"type": "boolean"},
            }
        ),
        "Ticker": _obj(
            {
                "ticker": STR,
                "tracked": {
                    "type": "boolean",
                    "description": "Processed by the nightly pipeline; false: removed from the "
                    "universe, its stored data kept.",
                },
                "provider": STR,
                "rows": INT,
                "first_date": _nullable(DATE),
                "last_date": _nullable(DATE),
                "last_close": _nullable(NUM),
                "champion_version": _nullable(INT),
                "last_forecast": _nullable(
                    _obj(
                        {
                            "as_of": DATE,
                            "target_date": DATE,
                            "predicted_close": nnum,
                            "method": method,
                        }
                    )
                ),
                "last_run_status": _nullable(
                    {
                        "type": "string",
                        "enum": list(STEP_STATUSES),
                        "description": "Status of the ticker's newest pipeline step.",
                    }
                ),
            }
        ),
        "Step": _obj(
            {
                "ticker": STR,
                "status": {"type": "string", "enum": list(STEP_STATUSES)},
                "started_at": DATETIME,
                "finished_at": _nullable(DATETIME),
                "duration_seconds": _nullable(NUM),
                "rows_fetched": _nullable(INT),
                "rows_inserted": _nullable(INT),
                "rows_rejected": _nullable(INT),
                "model_version_id": _nullable(INT),
                "promoted": _nullable({"type": "boolean"}),
                "detail": _nullable(STR),
                "error_code": _nullable(STR),
                "error": _nullable(
                    {
                        **STR,
                        "description": "Public text of the failure; full detail: "
                        "`stockcast runs show ID`.",
                    }
                ),
                "worker": _nullable(
                    {
                        **STR,
                        "description": "Opaque name of the worker that ran the step "
                        "(a local pool slot, or a Celery worker's name).",
                    }
                ),
            }
        ),
        "SummaryRow": _obj(
            {
                "ticker": STR,
                "name": _nullable(STR),
                "last_date": _nullable(DATE),
                "last_close": nnum,
                "recent_closes": {
                    "type": "array",
                    "items": nnum,
                    "description": "The newest closes (at most 30), oldest first.",
                },
                "forecast": _nullable(
                    _obj(
                        {
                            "as_of": DATE,
                            "target_date": DATE,
                            "predicted_close": NUM,
                            "predicted_change_pct": NUM,
                            "interval": _ref("Interval"),
                            "last_close": NUM,
                            "method": method,
                        }
                    )
                ),
                "skill": _nullable(
                    {
                        **_obj(
                            {
                                "model_version": INT,
                                "method": method,
                                "mae_ratio": nnum,
                                "dm_pvalue": nnum,
                                "best_baseline": _nullable(
                                    {"type": "string", "enum": list(BASELINES)}
                                ),
                                "best_baseline_mae_ratio": nnum,
                                "dm_best_pvalue": nnum,
                                "n_forecasts": _nullable(INT),
                                "backtest_end": _nullable(DATE),
                            }
                        ),
                        "description": "The network's rolling-origin backtest of the version "
                        "that made the forecast (else the champion): MAE ratio and one-sided "
                        "Diebold-Mariano p-value vs persistence and vs the best baseline.",
                    }
                ),
                "freshness": {
                    **_obj(
                        {
                            "forecast_as_of": _nullable(DATE),
                            "last_session": DATE,
                            "sessions_behind": _nullable(INT),
                            "behind_data": {"type": "boolean"},
                            "stale": {"type": "boolean"},
                        }
                    ),
                    "description": "last_session: the exchange's last session before today. "
                    "stale: no forecast, or one made before that session or before the newest "
                    "stored close (behind_data).",
                },
                "last_run": _nullable(
                    _obj(
                        {
                            "run_id": INT,
                            "status": {"type": "string", "enum": list(STEP_STATUSES)},
                            "started_at": DATETIME,
                            "finished_at": _nullable(DATETIME),
                            "duration_seconds": nnum,
                            "detail": _nullable(STR),
                            "error_code": _nullable(STR),
                            "error": _nullable(STR),
                        }
                    )
                ),
            }
        ),
        "Series": _obj(
            {
                "ticker": STR,
                "start": _nullable(DATE),
                "end": _nullable(DATE),
                "truncated": {"type": "boolean"},
                "closes": _obj(
                    {
                        "date": {"type": "array", "items": DATE},
                        "close": {"type": "array", "items": nnum},
                    }
                ),
                "forecasts": {
                    **_obj(
                        {
                            "as_of": {"type": "array", "items": DATE},
                            "target_date": {"type": "array", "items": DATE},
                            "predicted_close": {"type": "array", "items": nnum},
                            "low": {"type": "array", "items": nnum},
                            "high": {"type": "array", "items": nnum},
                            "coverage": {"type": "array", "items": nnum},
                            "method": {"type": "array", "items": method},
                            "actual_close": {"type": "array", "items": nnum},
                            "abs_error": {"type": "array", "items": nnum},
                            "persistence_abs_error": {"type": "array", "items": nnum},
                        }
                    ),
                    "description": "Columns, one entry per forecast, oldest target first; "
                    "actual_close and the errors are null until the target day's close is "
                    "stored. persistence_abs_error: |last close - actual|.",
                },
            }
        ),
        "Run": _obj(
            {
                "id": INT,
                "kind": STR,
                "trigger": STR,
                "status": {"type": "string", "enum": list(RUN_STATUSES)},
                "started_at": DATETIME,
                "finished_at": _nullable(DATETIME),
                "tickers": {"type": "array", "items": STR},
                "error_code": _nullable(STR),
                "error": _nullable(STR),
                "steps": {"type": "array", "items": _ref("Step")},
            }
        ),
    }
    not_found = _error("Unknown ticker.")
    paths = {
        "/v1/tickers": {
            "get": {
                "summary": "Tickers, tracked or not, ordered by symbol",
                "description": "Every stored ticker with its tracked flag, data range, last close, "
                "champion model version, newest forecast and newest pipeline step status. "
                "Paginated (follow next_offset) and filterable by symbol and tracked state.",
                "operationId": "listTickers",
                "parameters": [
                    _query(
                        "q",
                        {"type": "string", "pattern": r"^\^?[A-Za-z0-9.\-=]{1,20}$"},
                        "Only symbols containing this text (case-insensitive), e.g. GOO.",
                    ),
                    _query(
                        "tracked",
                        {"type": "boolean"},
                        "true: only tracked tickers; false: only tickers no longer tracked.",
                    ),
                    _limit(100, max_limit),
                    OFFSET,
                ],
                "responses": {
                    "200": _ok(
                        "Tickers",
                        _obj(
                            {
                                "total": INT,
                                "limit": INT,
                                "offset": INT,
                                "next_offset": _nullable(INT),
                                "tickers": {"type": "array", "items": _ref("Ticker")},
                            }
                        ),
                    ),
                    **COMMON_ERRORS,
                },
            }
        },
        "/v1/forecasts/{ticker}": {
            "get": {
                "summary": "Latest next-trading-day close forecast",
                "description": "The newest stored forecast with its prediction interval, the last actual close "
                "(which is also the persistence baseline's forecast) and the model's walk-forward MAE "
                "as a ratio to persistence (below 1 means it beat 'tomorrow = today').",
                "operationId": "getForecast",
                "parameters": [TICKER_PARAM],
                "responses": {
                    "200": _ok("Forecast", _ref("Forecast")),
                    "304": {"description": "Not modified (If-None-Match matched the ETag)."},
                    "404": _error("Unknown ticker, or no forecast yet."),
                    **COMMON_ERRORS,
                },
            }
        },
        "/v1/forecasts/{ticker}/history": {
            "get": {
                "summary": "Past forecasts with the actual close once known",
                "operationId": "getForecastHistory",
                "parameters": [TICKER_PARAM, START, END, _limit(100, max_limit), OFFSET],
                "responses": {
                    "200": _ok(
                        "Forecast history, newest first",
                        _obj(
                            {
                                "ticker": STR,
                                "total": INT,
                                "limit": INT,
                                "offset": INT,
                                "next_offset": _nullable(INT),
                                "forecasts": {"type": "array", "items": _ref("HistoryItem")},
                            }
                        ),
                    ),
                    "404": not_found,
                    **COMMON_ERRORS,
                },
            }
        },
        "/v1/models/{ticker}": {
            "get": {
                "summary": "Model versions with metrics, champion flag and rejection reasons",
                "operationId": "listModels",
                "parameters": [TICKER_PARAM],
                "responses": {
                    "200": _ok(
                        "Model versions, newest first (at most 100)",
                        _obj(
                            {
                                "ticker": STR,
                                "champion_version": _nullable(INT),
                                "models": {"type": "array", "items": _ref("ModelVersion")},
                            }
                        ),
                    ),
                    "404": not_found,
                    **COMMON_ERRORS,
                },
            }
        },
        "/v1/prices/{ticker}": {
            "get": {
                "summary": "Stored daily OHLCV",
                "description": "Rows in [start, end], oldest first, at most `limit`; without start, the newest `limit` rows.",
                "operationId": "listPrices",
                "parameters": [TICKER_PARAM, START, END, _limit(100, max_limit)],
                "responses": {
                    "200": _ok(
                        "Prices",
                        _obj(
                            {
                                "ticker": STR,
                                "count": INT,
                                "limit": INT,
                                "truncated": {"type": "boolean"},
                                "prices": {"type": "array", "items": _ref("Price")},
                            }
                        ),
                    ),
                    "404": not_found,
                    **COMMON_ERRORS,
                },
            }
        },
        "/v1/summary": {
            "get": {
                "summary": "Every ticker in one row: last close, next forecast, skill, freshness",
                "description": "What the dashboard (`/`) shows: per ticker, the last close, the "
                "newest forecast with its change and interval and the method that made it, the "
                "network's backtest skill vs persistence, whether the forecast is stale, the last "
                "pipeline step and the recent closes. Sorted by symbol; `q` filters.",
                "operationId": "getSummary",
                "parameters": [
                    _query(
                        "q",
                        {
                            "type": "string",
                            "maxLength": 40,
                            "pattern": r"^[^\u0000-\u001f\u007f-\u009f]*$",
                        },
                        "Case-insensitive part of the symbol or name.",
                    ),
                    _limit(50, 500),
                    OFFSET,
                ],
                "responses": {
                    "200": _ok(
                        "One page of tickers",
                        _obj(
                            {
                                "last_session": DATE,
                                "total": INT,
                                "limit": INT,
                                "offset": INT,
                                "next_offset": _nullable(INT),
                                "tickers": {"type": "array", "items": _ref("SummaryRow")},
                            }
                        ),
                    ),
                    **COMMON_ERRORS,
                },
            }
        },
        "/v1/series/{ticker}": {
            "get": {
                "summary": "Chart columns: closes, forecasts, intervals, realized errors",
                "description": "Closes in [start, end] and the forecasts whose target date falls "
                "in it, oldest first, as columns (what the ticker page draws). At most the newest "
                "`limit` of each; `truncated` says when more exist.",
                "operationId": "getSeries",
                "parameters": [TICKER_PARAM, START, END, _limit(20_000, 20_000)],
                "responses": {
                    "200": _ok("Series", _ref("Series")),
                    "404": not_found,
                    **COMMON_ERRORS,
                },
            }
        },
        "/v1/runs": {
            "get": {
                "summary": "Pipeline runs and their per-ticker steps, newest first",
                "operationId": "listRuns",
                "parameters": [
                    _limit(20, 200),
                    OFFSET,
                    _query(
                        "ticker",
                        {"type": "string", "pattern": TICKER_PATTERN, "maxLength": 21},
                        "Only the runs that had a step for this ticker.",
                    ),
                ],
                "responses": {
                    "200": _ok(
                        "Runs",
                        _obj(
                            {
                                "total": INT,
                                "limit": INT,
                                "offset": INT,
                                "runs": {"type": "array", "items": _ref("Run")},
                            }
                        ),
                    ),
                    **COMMON_ERRORS,
                },
            }
        },
        "/healthz": {
            "get": {
                "summary": "Liveness: the process is up",
                "operationId": "healthz",
                "responses": {
                    "200": _ok("Up", _obj({"status": STR}), cached=False),
                    **COMMON_ERRORS,
                },
            }
        },
        "/readyz": {
            "get": {
                "summary": "Readiness: database reachable and migrations at head",
                "operationId": "readyz",
                "responses": {
                    "200": _ok(
                        "Ready",
                        _obj({"status": STR, "database": STR, "revision": STR}),
                        cached=False,
                    ),
                    **COMMON_ERRORS,
                    "503": _error("Database unreachable or migrations pending."),
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "operationId": "metrics",
                "responses": {
                    "200": {
                        "description": "Prometheus text format 0.0.4",
                        "content": {"text/plain": {"schema": STR}},
                    },
                    **COMMON_ERRORS,
                },
            }
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "stockcast API",
            "version": forecaster.__version__,
            "description": "Next-trading-day close forecasts with intervals, evaluated walk-forward "
            "against the naive persistence baseline. Read-only; every error is "
            '{"error": {"code", "message"}}.',
        },
        "paths": paths,
        "components": {"schemas": schemas},
    }
