"""GET /openapi.json and the /docs page for people: every endpoint with its parameters, response
fields and an example, rendered on the server from the same document (no CDN, no script)."""

from __future__ import annotations

import json
from functools import cache

from flask import Blueprint, Response, render_template

import api.schema_docs as schema_docs
from api.context import state
from api.openapi import build_spec
from api.pages import page

bp = Blueprint("docs", __name__)


@cache
def _spec_json(max_limit: int) -> str:
    return json.dumps(build_spec(max_limit))


@bp.get("/openapi.json")
def openapi() -> Response:
    return Response(_spec_json(state().settings.api_max_limit), mimetype="application/json")


@bp.get("/docs")
def docs() -> Response:
    """Every endpoint with its parameters, the fields of its response model and an example,
    rendered on the server from the OpenAPI document (no script, no CDN, the pages' CSP)."""
    return page(_docs_html(state().settings.api_max_limit))


@cache
def _docs_html(max_limit: int) -> str:
    spec = build_spec(max_limit)
    components = spec["components"]["schemas"]
    operations = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            ok = op["responses"].get("200", {})
            body = ok.get("content", {}).get("application/json")
            model = schema_docs.resolve(body["schema"], components)[0] if body else None
            operations.append(
                {
                    "id": op["operationId"],
                    "method": method.upper(),
                    "path": path,
                    "summary": op["summary"],
                    "description": op.get("description"),
                    "parameters": [
                        {
                            "name": p["name"],
                            "in": p["in"],
                            "type": schema_docs.type_name(p["schema"], components),
                            "default": p["schema"].get("default"),
                            "description": p.get("description", ""),
                        }
                        for p in op.get("parameters", [])
                    ],
                    "responses": [
                        {
                            "status": status,
                            "description": r["description"],
                            "media": list(r.get("content", {})),
                            "model": schema_docs.resolve(
                                r["content"]["application/json"]["schema"], components
                            )[0]
                            if "application/json" in r.get("content", {})
                            else None,
                        }
                        for status, r in op["responses"].items()
                    ],
                    "model": model,
                    "fields": schema_docs.field_rows(model, components) if model else [],
                    "example": json.dumps(body["example"], indent=2) if body else None,
                }
            )
    return render_template("pages/docs.html", spec=spec, operations=operations)
