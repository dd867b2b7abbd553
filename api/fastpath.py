"""The hottest request, answered before Flask: `GET` or `HEAD /v1/forecasts/<TICKER>`.

Such a request needs no routing, request context, ORM session or view: its body is the forecast
document stored with the newest prediction (one indexed read, `storage.latest_document`), or the
copy the per-worker response cache (api/cache.py) holds. It gets the very status, headers and
body the Flask path gives it (api/__init__.py `_finish`, api/forecasts.py `latest`) and is
counted in the same request metrics.

Everything else falls through to Flask: a query string (parsed and refused there), If-Match, a
symbol not written as it is stored (lower case, invalid), a SQLite file that is gone (Flask
answers 503), a JSON provider that would not send the stored bytes (debug mode), and a read
whose answer is not a stored document: no forecast, an unknown ticker, a row written before
documents existed, a database error. The read's outcome goes with the request
(`environ[READ_KEY]`), so Flask answers it without asking the database again: a frozen database
costs one timeout, not two.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from flask import Flask
from flask.json.provider import DefaultJSONProvider

from api.cache import Rendered, if_none_match
from forecaster import dbtimeouts, storage
from forecaster.errors import DatabaseUnavailable, InvalidTicker
from forecaster.providers.base import normalize_ticker

if TYPE_CHECKING:
    from api.context import ApiState

PREFIX = "/v1/forecasts/"
ROUTE = "/v1/forecasts/<ticker>"  # the URL rule, as the metrics name it
READ_KEY = "stockcast.latest_document"  # what the read found, or the exception it raised
# When Flask takes over after a read: the request's start (time.perf_counter) for its latency
# metric, and its database deadline (time.monotonic), so the read and Flask share one budget.
STARTED_KEY = "stockcast.started"
DEADLINE_KEY = "stockcast.db_deadline"

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class LatestForecasts:
    """WSGI middleware in front of the Flask app (`app.wsgi_app`)."""

    def __init__(self, app: Flask, state: ApiState) -> None:
        self.wsgi_app: WSGIApp = app.wsgi_app
        self.app = app
        self.state = state

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        started = time.perf_counter()
        method = environ.get("REQUEST_METHOD")
        path: str = environ.get("PATH_INFO", "")
        if (
            (method != "GET" and method != "HEAD")
            or not path.startswith(PREFIX)
            or environ.get("QUERY_STRING")
            or "HTTP_IF_MATCH" in environ
        ):
            return self.wsgi_app(environ, start_response)
        state = self.state
        try:
            # First: a replaced file clears the cache, a deleted one is Flask's 503.
            state.check_database_file()
        except DatabaseUnavailable:
            return self.wsgi_app(environ, start_response)
        symbol = path[len(PREFIX) :]
        rendered = state.responses.get(symbol)
        if rendered is None:
            rendered = self._read(symbol, environ, started)
            if rendered is None:
                return self.wsgi_app(environ, start_response)
        etag = rendered.etag
        header = environ.get("HTTP_IF_NONE_MATCH")
        if header and if_none_match(header, etag[1:-1]):
            status, body = 304, b""
            start_response(
                "304 NOT MODIFIED", [("ETag", etag), ("Cache-Control", state.cache_control)]
            )
        else:
            status, body = 200, rendered.body
            start_response(
                "200 OK",
                [
                    ("Content-Type", "application/json"),
                    ("Content-Length", str(len(body))),
                    ("ETag", etag),
                    ("Cache-Control", state.cache_control),
                ],
            )
            if method == "HEAD":
                body = b""
        state.metrics.observe(method, ROUTE, status, time.perf_counter() - started)
        return [body] if body else []

    def _read(self, symbol: str, environ: dict[str, Any], started: float) -> Rendered | None:
        """The stored document of `symbol`'s newest forecast, rendered and cached; None when
        Flask must answer (the read's outcome left in `environ` for it)."""
        try:
            if normalize_ticker(symbol) != symbol:
                return None
        except InvalidTicker:
            return None
        if not sends_stored_bytes(self.app):
            return None
        state = self.state
        timeout = state.settings.db_timeout_seconds
        environ[STARTED_KEY] = started
        environ[DEADLINE_KEY] = time.monotonic() + timeout
        token = dbtimeouts.start_deadline(timeout)
        try:
            with state.reader.connect() as conn:
                found = storage.latest_document(conn, symbol)
            body = stored_body(found)
            if body is None:
                environ[READ_KEY] = found
                return None
            rendered = Rendered.of(body)
            state.responses.put(symbol, rendered)
            return rendered
        except Exception as exc:  # Flask's error handlers answer it (503 for the database)
            environ[READ_KEY] = exc
            return None
        finally:
            dbtimeouts.end_deadline(token)


def sends_stored_bytes(app: Flask) -> bool:
    """Whether the app's JSON provider writes what documents.dumps stored (Flask's default
    provider in production, keys unsorted); in debug mode or with compact=False it indents, and
    the view renders the rows instead."""
    provider = app.json
    return (
        isinstance(provider, DefaultJSONProvider)
        and provider.ensure_ascii
        and not provider.sort_keys
        and (provider.compact is True or (provider.compact is None and not app.debug))
    )


def stored_body(found: tuple[str | None] | None) -> bytes | None:
    """The response body from `storage.latest_document`'s answer: the stored document as it is
    (kept current when its version is retired); None for no forecast or a row without one."""
    if found is None or found[0] is None:
        return None
    return found[0].encode()
