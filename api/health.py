"""GET /healthz (process up), /readyz (database reachable, migrations at head), /metrics."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from flask import Blueprint, Response

import api.schemas as schemas
from api.context import db, state
from api.errors import error_response
from api.params import respond
from api.routes import Operation, route
from forecaster import migrate, storage

log = logging.getLogger(__name__)
bp = Blueprint("health", __name__)


@route(
    bp,
    Operation(
        "/healthz", "healthz", "Liveness: the process is up", "Up", schemas.Health, cached=False
    ),
)
def healthz() -> Response:
    return respond(schemas.Health(status="ok"))


@route(
    bp,
    Operation(
        "/readyz",
        "readyz",
        "Readiness: database reachable and migrations at head",
        "Ready",
        schemas.Ready,
        statuses={"503": "Database unreachable or migrations pending."},
        cached=False,
    ),
)
def readyz() -> tuple[Response, int]:
    engine = state().engine
    try:
        with engine.connect() as conn:
            storage.ping(conn)
        current = migrate.current_revision(engine)
        head = migrate.head_revision()
    except Exception as exc:  # any failure to reach the database means "not ready"
        # The cause goes to the log; a monitor only needs to know the database is unreachable.
        log.warning("readiness check failed", extra={"error": f"{type(exc).__name__}: {exc}"})
        return error_response(503, "database_unavailable", "database unreachable")
    if current is None or current != head:
        return error_response(
            503,
            "migrations_pending",
            f"schema at {current or 'base'}, code expects {head}; run `stockcast db upgrade`",
        )
    return respond(
        schemas.Ready(status="ready", database=engine.dialect.name, revision=current)
    ), 200


@route(
    bp,
    Operation(
        "/metrics",
        "metrics",
        "Prometheus metrics",
        "Prometheus text format 0.0.4",
        None,
        cached=False,
    ),
)
def metrics() -> Response:
    today = datetime.now(UTC).date()
    ages: dict[str, float] = {}
    try:
        newest = storage.newest_forecast_days(db())
        ages = {symbol: float((today - as_of).days) for symbol, as_of in newest.items()}
    except Exception:  # metrics must render even when the database is down
        ages = {}
    body = state().metrics.render(ages)
    response = Response(body)
    response.headers["Content-Type"] = "text/plain; version=0.0.4; charset=utf-8"
    return response
