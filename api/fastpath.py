"""The hottest request, answered before Flask: `GET` or `HEAD /v1/forecasts/<TICKER>` whose body
the per-worker response cache (api/cache.py) already holds.

Such a request needs no routing, request context, database or view: the answer is the cached
body with its ETag, or a 304. It gets the very status, headers and body the Flask path gives it
(api/__init__.py `_finish`, api/forecasts.py `latest`), is counted in the same request metrics,
and everything else falls through to Flask: a query string (parsed and refused there), If-Match,
a symbol not written as the cache keys it (lower case), a cache miss, and a SQLite file that is
gone (the Flask path answers 503).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from api.cache import if_none_match
from forecaster.errors import DatabaseUnavailable

if TYPE_CHECKING:
    from api.context import ApiState

PREFIX = "/v1/forecasts/"
ROUTE = "/v1/forecasts/<ticker>"  # the URL rule, as the metrics name it

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class CachedForecasts:
    """WSGI middleware in front of the Flask app (`app.wsgi_app`)."""

    def __init__(self, wsgi_app: WSGIApp, state: ApiState) -> None:
        self.wsgi_app = wsgi_app
        self.state = state

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        started = time.perf_counter()
        state = self.state
        method = environ.get("REQUEST_METHOD")
        path: str = environ.get("PATH_INFO", "")
        if (
            state.responses.ttl > 0
            and (method == "GET" or method == "HEAD")
            and path.startswith(PREFIX)
            and not environ.get("QUERY_STRING")
            and "HTTP_IF_MATCH" not in environ
        ):
            try:
                # First: a replaced file clears the cache, a deleted one is Flask's 503.
                state.check_database_file()
            except DatabaseUnavailable:
                return self.wsgi_app(environ, start_response)
            rendered = state.responses.get(path[len(PREFIX) :])
            if rendered is not None:
                etag = rendered.etag
                header = environ.get("HTTP_IF_NONE_MATCH")
                if header and if_none_match(header, etag[1:-1]):
                    status, body = 304, b""
                    start_response(
                        "304 NOT MODIFIED",
                        [("ETag", etag), ("Cache-Control", state.cache_control)],
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
        return self.wsgi_app(environ, start_response)
