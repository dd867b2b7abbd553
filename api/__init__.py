"""Flask application factory: read-only HTTP API over stored forecasts, models and prices."""

from __future__ import annotations

import time
from typing import Any

from flask import Flask, Response, g, request
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from api.cache import etag_of, if_none_match
from api.context import ApiState
from api.errors import register_error_handlers
from api.fastpath import DEADLINE_KEY, STARTED_KEY, LatestForecasts
from forecaster import dbtimeouts, storage
from forecaster.settings import Settings


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> Flask:
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    # "//" in a path is a 404 like any unknown path, not an HTML redirect to a guess.
    app.url_map.merge_slashes = False
    app.config["MAX_CONTENT_LENGTH"] = 1024  # GET-only API: refuse request bodies
    if engine is None:
        storage.ensure_sqlite_dir(settings.resolved_database_url)
        engine = storage.make_engine(
            settings.resolved_database_url, timeout=settings.db_timeout_seconds
        )
    app.extensions["stockcast"] = ApiState(settings, engine)

    from api import docs, forecasts, health, models, pages, prices, runs, summary, tickers

    for module in (tickers, forecasts, models, prices, runs, summary, health, docs, pages):
        app.register_blueprint(module.bp)
    register_error_handlers(app)

    api_state: ApiState = app.extensions["stockcast"]
    metrics = api_state.metrics
    # The latest forecast's stored document is answered before Flask, identically (api/fastpath.py).
    app.wsgi_app = LatestForecasts(app, api_state)  # type: ignore[method-assign]

    @app.before_request
    def _start_timer() -> None:
        environ = request.environ
        # A request the layer before Flask began (api/fastpath.py) keeps its start and budget.
        g.started = environ.get(STARTED_KEY) or time.perf_counter()
        # One budget for all of the request's database waits (connect, ping, queries).
        at = environ.get(DEADLINE_KEY)
        budget = settings.db_timeout_seconds if at is None else max(0.0, at - time.monotonic())
        g.db_deadline = dbtimeouts.start_deadline(budget)
        path = request.path
        if path.startswith("/v1/") or path == "/readyz":
            api_state.check_database_file()

    @app.after_request
    def _finish(response: Response) -> Response:
        if (
            response.status_code == 200
            and request.path.startswith("/v1/")
            and request.method in ("GET", "HEAD")
        ):
            headers = response.headers
            headers["Cache-Control"] = api_state.cache_control
            etag = headers.get("ETag")  # the forecast view sends the one it cached with the body
            if etag is None:
                etag = etag_of(response.get_data())
                headers["ETag"] = etag
            conditional(request.environ, response, etag)
        rule = request.url_rule.rule if request.url_rule is not None else "<unmatched>"
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        metrics.observe(request.method, rule, response.status_code, elapsed)
        return response

    @app.teardown_appcontext
    def _release(exc: BaseException | None) -> None:
        session: Session | None = g.pop("db", None)
        token = g.pop("db_deadline", None)
        try:
            if session is not None:
                session.rollback()  # read-only API: nothing to commit, end the transaction
                session.close()
        finally:
            if token is not None:
                dbtimeouts.end_deadline(token)

    return app


def conditional(environ: dict[str, Any], response: Response, etag: str) -> None:
    """Answer a GET or HEAD whose If-None-Match names our (strong, quoted) `etag` with a 304 and
    no body, as werkzeug's `make_conditional` does, without its per-request cost.

    If-None-Match uses the weak comparison (RFC 9110 13.1.2): `*`, a list, `W/` tags all match.
    The rare If-Match (and its 412) is left to werkzeug itself.
    """
    if "HTTP_IF_MATCH" in environ:
        response.make_conditional(environ)
        return
    header = environ.get("HTTP_IF_NONE_MATCH")
    if header and if_none_match(header, etag[1:-1]):
        response.status_code = 304  # werkzeug drops the body and entity headers when sending
