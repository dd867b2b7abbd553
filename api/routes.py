"""The route table: every API route declared once, with what /openapi.json says about it.

`@route(bp, Operation(rule, ...))` registers the Flask route and its `Operation` in ROUTES, and
api/openapi.py generates the document's paths from ROUTES and the pydantic models named here
(api/schemas.py, api/queries.py): a route cannot exist undocumented, nor a document describe a
route that does not exist.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from flask import Blueprint
from flask.typing import RouteCallable

if TYPE_CHECKING:
    from api.queries import Query
    from api.schemas import Schema

View = TypeVar("View", bound=RouteCallable)


@dataclass(frozen=True)
class Operation:
    """One GET route as the OpenAPI document describes it."""

    rule: str  # the Flask URL rule, e.g. /v1/forecasts/<ticker>
    operation_id: str
    summary: str
    ok: str  # what the 200 response is
    response: type[Schema] | None  # the 200 body's model; None: Prometheus text
    query: type[Query] | None = None  # the query parameters' model; None: no query string
    description: str | None = None
    not_found: str | None = None  # the 404's meaning, for routes that have one
    statuses: Mapping[str, str] = field(default_factory=dict)  # other statuses it may answer
    csv: str | None = None  # the header line when the route also answers text/csv
    cached: bool = True  # ETag and Cache-Control on the 200
    # The worker's response cache replays the 200 of a GET for STOCKCAST_API_RESPONSE_TTL
    # seconds (api/middleware.py): for the hottest reads, whose answer changes once a night.
    replayed: bool = False

    @property
    def path(self) -> str:
        """The OpenAPI path: Flask's <name> becomes {name}."""
        return self.rule.replace("<", "{").replace(">", "}")


ROUTES: dict[str, Operation] = {}


def route(bp: Blueprint, op: Operation) -> Callable[[View], View]:
    """Register `op.rule` (GET) on `bp` and `op` in ROUTES."""
    if ROUTES.setdefault(op.rule, op) is not op:
        raise RuntimeError(f"route {op.rule} declared twice")

    def register(view: View) -> View:
        bp.get(op.rule)(view)
        return view

    return register
