"""GET /openapi.json and a self-contained, human-readable /docs page (no CDN needed)."""

from __future__ import annotations

import html
import json
from functools import cache

from flask import Blueprint, Response

from api.context import state
from api.openapi import build_spec

bp = Blueprint("docs", __name__)


@cache
def _spec_json(max_limit: int) -> str:
    return json.dumps(build_spec(max_limit))


@bp.get("/openapi.json")
def openapi() -> Response:
    return Response(_spec_json(state().settings.api_max_limit), mimetype="application/json")


@bp.get("/docs")
def docs() -> Response:
    spec = build_spec(state().settings.api_max_limit)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>stockcast API</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}"
        "code,pre{background:#f4f4f4;padding:.1rem .3rem}h2{border-top:1px solid #ddd;padding-top:1rem}"
        "table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.2rem .5rem;text-align:left}</style>",
        "</head><body>",
        f"<h1>{html.escape(spec['info']['title'])} <small>{html.escape(spec['info']['version'])}</small></h1>",
        f"<p>{html.escape(spec['info']['description'])}</p>",
        "<p>Machine-readable: <a href='/openapi.json'>/openapi.json</a>. Example: "
        "<code>curl 'http://HOST/v1/forecasts/%5EGSPC'</code></p>",
        "<p>Pages for people: the <a href='/'>dashboard</a> (every ticker, searchable) and one "
        "page per ticker, <code>/tickers/{symbol}</code> (e.g. "
        "<a href='/tickers/%5EGSPC'>/tickers/%5EGSPC</a>): chart, model card, recent runs. "
        "They read the endpoints below.</p>",
    ]
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            parts.append(f"<h2><code>{method.upper()} {html.escape(path)}</code></h2>")
            parts.append(f"<p><b>{html.escape(op['summary'])}</b></p>")
            if op.get("description"):
                parts.append(f"<p>{html.escape(op['description'])}</p>")
            if op.get("parameters"):
                parts.append("<table><tr><th>parameter</th><th>in</th><th>description</th></tr>")
                for p in op["parameters"]:
                    parts.append(
                        f"<tr><td><code>{html.escape(p['name'])}</code></td><td>{p['in']}</td>"
                        f"<td>{html.escape(p.get('description', ''))}</td></tr>"
                    )
                parts.append("</table>")
            parts.append("<ul>")
            for status, resp in op["responses"].items():
                parts.append(f"<li><code>{status}</code> {html.escape(resp['description'])}</li>")
            parts.append("</ul>")
    parts.append("</body></html>")
    return Response("".join(parts), mimetype="text/html")
