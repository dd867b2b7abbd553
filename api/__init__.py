"""Flask application factory: read-only HTTP API over stored forecasts, models and prices."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, g, request
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from api.cache import etag_of, if_none_match
from api.context import ApiState
from api.errors import register_error_handlers
from api.middleware import RULE_KEY, RequestScope, ResponseReplay
from api.routes import ROUTES
from forecaster import storage
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
    replayed = frozenset(rule for rule, op in ROUTES.items() if op.replayed)
    app.wsgi_app = RequestScope(  # type: ignore[method-assign]
        ResponseReplay(app.wsgi_app, api_state, replayed),
        settings.db_timeout_seconds,
        api_state.metrics,
    )

    @app.before_request
    def _begin() -> None:
        """Note the matched URL rule for the metrics and the replay (api/middleware.py), and
        refuse to serve from a SQLite file that is gone."""
        environ = request.environ
        rule = request.url_rule
        if rule is not None:
            environ[RULE_KEY] = rule.rule
        path = environ.get("PATH_INFO", "")
        if path.startswith("/v1/") or path == "/readyz":
            api_state.check_database_file()  # a 503 from the error handlers if it is gone

    @app.after_request
    def _validators(response: Response) -> Response:
        """Every successful GET or HEAD of /v1/ is cacheable: Cache-Control, a strong ETag of the
        body and a 304 for a matching If-None-Match."""
        if response.status_code != 200:
            return response
        environ = request.environ
        if environ.get("PATH_INFO", "").startswith("/v1/") and request.method in ("GET", "HEAD"):
            headers = response.headers
            headers["Cache-Control"] = api_state.cache_control
            etag = etag_of(response.get_data())
            headers["ETag"] = etag
            conditional(environ, response, etag)
        return response

    @app.teardown_appcontext
    def _release(exc: BaseException | None) -> None:
        session: Session | None = g.pop("db", None)
        if session is not None:
            session.rollback()  # read-only API: nothing to commit, end the transaction
            session.close()

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
