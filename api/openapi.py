"""The OpenAPI 3.1 description of every endpoint.

Components and query parameters are generated from the pydantic models of api/schemas.py and
api/queries.py (the one source of the contract); only the operations (paths, summaries, status codes) are written here.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

import api.queries as queries
import api.schema_docs as schema_docs
import api.schemas as schemas
import forecaster
from forecaster import forecast_record

REF_TEMPLATE = "#/components/schemas/{model}"
STR = {"type": "string"}

TICKER_PARAM = {
    "name": "ticker",
    "in": "path",
    "required": True,
    "description": "Yahoo-style symbol, e.g. ^GSPC (URL-encoded as %5EGSPC), GOOG, BRK-B.",
    "schema": {"type": "string", "pattern": queries.TICKER_PATTERN, "maxLength": 21},
}


def components() -> dict[str, Any]:
    """components/schemas of the document (a copy: callers may edit it)."""
    return copy.deepcopy(_components())


@cache
def _components() -> dict[str, Any]:
    """Every response model's JSON Schema, its nested models ($defs) hoisted beside it."""
    out: dict[str, Any] = {}
    for model in schemas.RESPONSES:
        schema = model.model_json_schema(ref_template=REF_TEMPLATE)
        for name, sub in [*schema.pop("$defs", {}).items(), (model.__name__, schema)]:
            if out.setdefault(name, sub) != sub:  # two models, one name: a $ref would lie
                raise RuntimeError(f"two different schemas named {name}")
    return out


def query_parameters(model: type[queries.Query], max_limit: int) -> list[dict[str, Any]]:
    """The query model's fields as OpenAPI parameters, in field order."""
    properties = model.model_json_schema().get("properties", {})
    params = []
    for name in model.model_fields:
        schema = {k: v for k, v in properties[name].items() if k not in ("title", "description")}
        if schema.get("default", 0) is None:
            del schema["default"]  # absent, not null: a query string has no null
        if schema.pop(queries.SETTINGS_MAXIMUM, False):
            schema["maximum"] = max_limit
        params.append(
            {
                "name": name,
                "in": "query",
                "required": False,
                "description": properties[name].get("description", ""),
                "schema": schema,
            }
        )
    return params


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF_TEMPLATE.format(model=name)}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref("Error")}}}


def _with_csv(response: dict[str, Any], header: str) -> dict[str, Any]:
    """The response also comes as text/csv (its first line: `header`)."""
    response["content"]["text/csv"] = {
        "schema": {"type": "string", "description": f"First line: {header}"}
    }
    return response


def _ok(description: str, model: type[schemas.Schema], cached: bool = True) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": _ref(model.__name__)}},
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


COMMON_ERRORS = {
    "400": _error("Malformed ticker, date or parameter; unknown query parameter."),
    "405": _error("Method not allowed: the API is read-only (GET)."),
    "500": _error("Unexpected error (logged); never a stack trace."),
    "503": _error("The database is unavailable."),
}


def build_spec(max_limit: int = 1000) -> dict[str, Any]:
    def query(model: type[queries.Query]) -> list[dict[str, Any]]:
        return query_parameters(model, max_limit)

    not_found = _error("Unknown ticker.")
    paths = {
        "/v1/tickers": {
            "get": {
                "summary": "Tickers, tracked or not, ordered by symbol",
                "description": "Every stored ticker with its tracked flag, data range, last close, "
                "champion model version, newest forecast and newest pipeline step status. "
                "Paginated (follow next_offset) and filterable by symbol and tracked state.",
                "operationId": "listTickers",
                "parameters": query(queries.TickerQuery),
                "responses": {
                    "200": _ok("Tickers", schemas.TickerPage),
                    **COMMON_ERRORS,
                },
            }
        },
        "/v1/forecasts/{ticker}": {
            "get": {
                "summary": "Latest next-trading-day close forecast",
                "description": "The newest stored forecast with its prediction interval, the last "
                "actual close (which is also the persistence baseline's forecast) and the model's "
                "walk-forward MAE as a ratio to persistence (below 1 means it beat 'tomorrow = "
                "today').",
                "operationId": "getForecast",
                "parameters": [TICKER_PARAM, *query(queries.NoQuery)],
                "responses": {
                    "200": _ok("Forecast", schemas.Forecast),
                    "304": {"description": "Not modified (If-None-Match matched the ETag)."},
                    "404": _error("Unknown ticker, or no forecast yet."),
                    **COMMON_ERRORS,
                },
            }
        },
        "/v1/forecasts/{ticker}/history": {
            "get": {
                "summary": "The forecast record, live and backtest, with the actual close",
                "description": "Live: each night's served forecast. Backtest: every method's "
                "out-of-sample forecast from the newest full backtest, with the interval it was "
                "scored with. Newest first by as-of day. JSON pages with `limit`/`offset`; "
                "`format=csv` (or `Accept: text/csv`) returns every matching row as CSV with the "
                "columns of HistoryItem (interval as low, high, coverage).",
                "operationId": "getForecastHistory",
                "parameters": [TICKER_PARAM, *query(queries.HistoryQuery)],
                "responses": {
                    "200": _with_csv(
                        _ok("Forecast record, newest first", schemas.ForecastHistory),
                        ",".join(forecast_record.COLUMNS),
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
                "parameters": [TICKER_PARAM, *query(queries.NoQuery)],
                "responses": {
                    "200": _ok("Model versions, newest first (at most 100)", schemas.ModelList),
                    "404": not_found,
                    **COMMON_ERRORS,
                },
            }
        },
        "/v1/prices/{ticker}": {
            "get": {
                "summary": "Stored daily OHLCV",
                "description": "Rows in [start, end], oldest first, at most `limit`; without "
                "start, the newest `limit` rows.",
                "operationId": "listPrices",
                "parameters": [TICKER_PARAM, *query(queries.PriceQuery)],
                "responses": {
                    "200": _ok("Prices", schemas.PricePage),
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
                "parameters": query(queries.SummaryQuery),
                "responses": {
                    "200": _ok("One page of tickers", schemas.SummaryPage),
                    **COMMON_ERRORS,
                },
            }
        },
        "/v1/series/{ticker}": {
            "get": {
                "summary": "Chart columns: closes, forecasts, intervals, realized errors",
                "description": "Closes in [start, end] and the forecasts whose target date falls "
                "in it, oldest first, as columns (what the ticker page draws). At most the newest "
                "`limit` of each; `truncated` says when more exist. The whole history (no "
                "parameter) is a document the pipeline stores when the ticker's data changes, "
                "read in one query and sent gzip-compressed to a client that accepts gzip.",
                "operationId": "getSeries",
                "parameters": [TICKER_PARAM, *query(queries.SeriesQuery)],
                "responses": {
                    "200": _ok("Series", schemas.Series),
                    "404": not_found,
                    **COMMON_ERRORS,
                },
            }
        },
        "/v1/runs": {
            "get": {
                "summary": "Pipeline runs and their per-ticker steps, newest first",
                "operationId": "listRuns",
                "parameters": query(queries.RunQuery),
                "responses": {
                    "200": _ok("Runs", schemas.RunPage),
                    **COMMON_ERRORS,
                },
            }
        },
        "/healthz": {
            "get": {
                "summary": "Liveness: the process is up",
                "operationId": "healthz",
                "responses": {
                    "200": _ok("Up", schemas.Health, cached=False),
                    **COMMON_ERRORS,
                },
            }
        },
        "/readyz": {
            "get": {
                "summary": "Readiness: database reachable and migrations at head",
                "operationId": "readyz",
                "responses": {
                    "200": _ok("Ready", schemas.Ready, cached=False),
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
    schemas_ = components()
    for ops in paths.values():
        for op in ops.values():
            for response in op["responses"].values():
                body = response.get("content", {}).get("application/json")
                if body is not None:  # an example of every JSON body, from its schema
                    body["example"] = schema_docs.example(body["schema"], schemas_)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "stockcast API",
            "version": forecaster.__version__,
            "description": "Next-trading-day close forecasts with intervals, evaluated walk-forward "
            "against the naive persistence baseline. Read-only; every error is "
            '{"error": {"code", "message"}}.',
        },
        "paths": paths,
        "components": {"schemas": schemas_},
    }
