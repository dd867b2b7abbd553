"""Flask application factory: read-only HTTP API over stored forecasts, models and prices."""

from __future__ import annotations

import hashlib
import time

from flask import Flask, Response, g, request
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from api.context import ApiState
from api.errors import register_error_handlers
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

    @app.before_request
    def _start_timer() -> None:
        g.started = time.perf_counter()
        # One budget for all of the request's database waits (connect, ping, queries).
        g.db_deadline = dbtimeouts.start_deadline(settings.db_timeout_seconds)
        if request.path.startswith("/v1/") or request.path == "/readyz":
            app.extensions["stockcast"].check_database_file()

    @app.after_request
    def _finish(response: Response) -> Response:
        if (
            request.path.startswith("/v1/")
            and request.method in ("GET", "HEAD")
            and response.status_code == 200
        ):
            max_age = app.extensions["stockcast"].settings.api_cache_max_age
            response.headers["Cache-Control"] = f"public, max-age={max_age}"
            response.set_etag(hashlib.sha256(response.get_data()).hexdigest()[:32])
            response.make_conditional(request)
        rule = request.url_rule.rule if request.url_rule is not None else "<unmatched>"
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        app.extensions["stockcast"].metrics.observe(
            request.method, rule, response.status_code, elapsed
        )
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
