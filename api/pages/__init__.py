"""HTML pages for people: the dashboard (`/`) and one page per ticker (`/tickers/<symbol>`).

The server renders only a small shell (title, headings, the symbol as an escaped data attribute);
the page's own JavaScript fills it from the JSON API (/v1/summary, /v1/series, /v1/models,
/v1/runs), so a page and an API client always see the same numbers. The chart library (uPlot)
is vendored in static/vendor/: no CDN, no build step.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, make_response, render_template
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException

from api.context import db, state
from forecaster import storage
from forecaster.errors import DatabaseUnavailable, InvalidTicker, StockcastError
from forecaster.providers.base import normalize_ticker

log = logging.getLogger("stockcast.api")

bp = Blueprint(
    "pages",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/assets",
)

# Only our own files: a script injected through data could not run even if escaping failed.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def page(html: str, status: int = 200) -> Response:
    """An HTML page with the pages' headers (CSP, nosniff, no-cache)."""
    response = make_response(html, status)
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-cache"
    return response


def _error_page(status: int, title: str, message: str) -> Response:
    return page(
        render_template("pages/error.html", status=status, title=title, message=message), status
    )


def _not_found(symbol: str) -> Response:
    # The symbol comes from the URL: the template autoescapes it like every other value.
    return _error_page(404, "Unknown ticker", f"{symbol} is not tracked by this service.")


@bp.get("/")
def dashboard() -> Response:
    return page(render_template("pages/dashboard.html"))


@bp.get("/tickers/<path:symbol>")
def ticker(symbol: str) -> Response:
    try:
        normalized = normalize_ticker(symbol) if symbol == symbol.strip() else None
    except InvalidTicker:
        normalized = None
    if normalized is None:
        return _not_found(symbol[:40])  # bounded echo of what was asked for
    state().check_database_file()
    row = storage.get_ticker(db(), normalized)
    if row is None:
        return _not_found(normalized)
    return page(render_template("pages/ticker.html", symbol=row.symbol, name=row.name))


@bp.errorhandler(DatabaseUnavailable)
@bp.errorhandler(DBAPIError)
def _database_down(exc: Exception) -> Response:
    log.error("database unavailable", extra={"error": type(exc).__name__})
    response = _error_page(
        503, "Database unavailable", "The database is unavailable; try again shortly."
    )
    response.headers["Retry-After"] = "5"
    return response


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    # A missing file under /assets/ is a 404 like any other, not a page error with a traceback.
    status = exc.code or 500
    if status == 404:
        return _error_page(404, "Not found", "There is nothing at this address.")
    return _error_page(status, exc.name, "The request could not be served.")


@bp.errorhandler(StockcastError)
@bp.errorhandler(Exception)
def _unexpected(exc: Exception) -> Response:
    log.exception("page error")
    return _error_page(500, "Something went wrong", "The error was logged.")
