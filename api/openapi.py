"""The OpenAPI 3.1 description of every endpoint.

Generated: the paths from the route table (api/routes.py: each route's rule, summary, models
and statuses, declared where the view is), the components and query parameters from the
pydantic models of api/schemas.py and api/queries.py.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

import api.forecasts as forecasts
import api.health as health
import api.models as models
import api.prices as prices
import api.queries as queries
import api.routes as routes
import api.runs as runs
import api.schema_docs as schema_docs
import api.schemas as schemas
import api.summary as summary
import api.tickers as tickers
import forecaster

# The modules whose routes the document describes: importing them fills routes.ROUTES.
VIEWS = (forecasts, health, models, prices, runs, summary, tickers)
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


def _operation(op: routes.Operation, max_limit: int) -> dict[str, Any]:
    """One route's OpenAPI operation, from its declaration (api/routes.py)."""
    parameters = [TICKER_PARAM] if "{ticker}" in op.path else []
    if op.query is not None:
        parameters += query_parameters(op.query, max_limit)
    if op.response is None:  # Prometheus text
        ok: dict[str, Any] = {"description": op.ok, "content": {"text/plain": {"schema": STR}}}
    else:
        ok = _ok(op.ok, op.response, cached=op.cached)
        if op.csv is not None:
            ok = _with_csv(ok, op.csv)
    responses: dict[str, Any] = {"200": ok}
    for status, description in op.statuses.items():  # 3xx: no body
        if status < "400":
            responses[status] = {"description": description}
    if op.not_found is not None:
        responses["404"] = _error(op.not_found)
    responses.update(COMMON_ERRORS)
    for status, description in op.statuses.items():  # a route's own meaning of an error
        if status >= "400":
            responses[status] = _error(description)
    operation: dict[str, Any] = {"summary": op.summary}
    if op.description is not None:
        operation["description"] = op.description
    operation["operationId"] = op.operation_id
    if parameters:
        operation["parameters"] = parameters
    operation["responses"] = responses
    return operation


def build_spec(max_limit: int = 1000) -> dict[str, Any]:
    """The document: one operation per declared route (api/routes.py ROUTES), the API's paths
    in alphabetical order, then the operational ones."""
    ordered = sorted(
        routes.ROUTES.values(), key=lambda op: (not op.rule.startswith("/v1/"), op.rule)
    )
    paths = {op.path: {"get": _operation(op, max_limit)} for op in ordered}
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
