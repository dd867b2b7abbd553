"""The WSGI layers around the Flask app, outermost first:

- `RequestScope`: every request's database deadline (one budget for all its waits: connect,
  ping, queries) and its metrics (method, URL rule, status, latency). Kept out of Flask's hooks,
  which cost several microseconds each on the hottest route.
- `ResponseReplay`: the per-worker response cache (STOCKCAST_API_RESPONSE_TTL seconds, 0: off).
  Flask is the one handler of every request; a 200 it gave to a GET of a route declared
  `replayed` (api/routes.py) is kept with its headers, and the same GET within the TTL gets those
  bytes again without entering Flask, or a 304 when its If-None-Match names their ETag. It reads
  no database and knows no route: what it sends is what Flask sent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple, Protocol

from werkzeug.http import remove_entity_headers

from api.cache import ResponseCache, if_none_match
from api.metrics import Metrics
from forecaster import dbtimeouts
from forecaster.errors import DatabaseUnavailable

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# The URL rule the request matched (set by the app's first hook, or by a replay), for the
# metrics and the cache; absent when Flask matched none.
RULE_KEY = "stockcast.rule"


class RequestScope:
    def __init__(self, wsgi_app: WSGIApp, budget: float, metrics: Metrics) -> None:
        self.wsgi_app = wsgi_app
        self.budget = budget  # seconds: STOCKCAST_DB_TIMEOUT_SECONDS
        self.metrics = metrics

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        started = time.perf_counter()
        sent: list[str] = []

        def record_status(status: str, headers: Any, exc_info: Any = None) -> Any:
            sent.append(status)
            return start_response(status, headers, exc_info)

        token = dbtimeouts.start_deadline(self.budget)
        try:
            return self.wsgi_app(environ, record_status)
        finally:
            dbtimeouts.end_deadline(token)
            method = environ.get("REQUEST_METHOD", "").upper()
            self.metrics.observe(
                method if method in _METHODS else "OTHER",  # a bounded label
                environ.get(RULE_KEY, "<unmatched>"),
                int(sent[-1][:3]) if sent else 500,
                time.perf_counter() - started,
            )


class Replayed(NamedTuple):
    """A 200 response as Flask sent it."""

    headers: tuple[tuple[str, str], ...]
    body: bytes
    etag: str
    rule: str


class CacheOwner(Protocol):
    """What the replay needs of the app's state (api/context.py ApiState)."""

    responses: ResponseCache[Replayed]
    generation: int  # bumped whenever the cache is emptied for a replaced database file

    def check_database_file(self) -> None: ...


# Headers that make a response one client's, never another's.
_PERSONAL = ("set-cookie", "vary", "content-encoding")


class ResponseReplay:
    def __init__(self, wsgi_app: WSGIApp, state: CacheOwner, rules: frozenset[str]) -> None:
        self.wsgi_app = wsgi_app
        self.state = state
        self.rules = rules  # the URL rules whose GET responses are kept

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        method = environ.get("REQUEST_METHOD", "").upper()
        cache = self.state.responses
        if (
            (method != "GET" and method != "HEAD")
            or cache.ttl <= 0
            or "HTTP_IF_MATCH" in environ  # rare: werkzeug answers it (412)
        ):
            return self.wsgi_app(environ, start_response)
        key = (environ.get("PATH_INFO", ""), environ.get("QUERY_STRING", ""))
        if cache.get(key) is not None:
            try:
                # A replaced SQLite file empties the cache; a deleted one is Flask's 503.
                self.state.check_database_file()
            except DatabaseUnavailable:
                return self.wsgi_app(environ, start_response)
            kept = cache.get(key)
            if kept is not None:
                return self._replay(kept, method, environ, start_response)
        if method == "HEAD":
            return self.wsgi_app(environ, start_response)
        return self._keep(key, environ, start_response)

    def _replay(
        self,
        kept: Replayed,
        method: str,
        environ: dict[str, Any],
        start_response: Callable[..., Any],
    ) -> list[bytes]:
        environ[RULE_KEY] = kept.rule
        headers = list(kept.headers)  # the server may add to the list it is given
        header = environ.get("HTTP_IF_NONE_MATCH")
        if header and if_none_match(header, kept.etag[1:-1]):
            remove_entity_headers(headers)  # what werkzeug sends with a 304
            start_response("304 NOT MODIFIED", headers)
            return []
        start_response("200 OK", headers)
        return [] if method == "HEAD" else [kept.body]

    def _keep(
        self, key: tuple[str, str], environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        """Run Flask and keep its answer when it is a plain 200 of a replayed route. A 304 (a
        client revalidating) fills the cache from an unconditional GET, so that clients which
        only revalidate are replayed too."""
        generation = self.state.generation
        answer: list[Any] = []

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            answer[:] = [status, tuple(headers)]  # as Flask gave it, before the server sees it
            return start_response(status, headers, exc_info)

        body = self.wsgi_app(environ, capture)
        rule = environ.get(RULE_KEY)
        if not answer or rule not in self.rules:
            return body
        if answer[0].startswith("304"):
            unconditional = {k: v for k, v in environ.items() if k != "HTTP_IF_NONE_MATCH"}
            fill: list[Any] = []
            unsent = self._store(
                key,
                rule,
                generation,
                fill,
                self.wsgi_app(unconditional, lambda *args: fill.extend([args[0], tuple(args[1])])),
            )
            close = getattr(unsent, "close", None)  # not kept: nobody sends it, so end it here
            if close is not None:
                close()
            return body
        return self._store(key, rule, generation, answer, body)

    def _store(
        self,
        key: tuple[str, str],
        rule: str,
        generation: int,
        answer: list[Any],
        body: Iterable[bytes],
    ) -> Iterable[bytes]:
        """Keep a 200 (`answer`: status, headers) that no client has a claim of its own on;
        the body as it must then be sent."""
        if not answer or answer[0] != "200 OK":
            return body
        headers: tuple[tuple[str, str], ...] = answer[1]
        values = {k.lower(): v.lower() for k, v in headers}
        control = values.get("cache-control", "")
        if (
            any(name in values for name in _PERSONAL)  # a per-client variant (gzip), a cookie
            or "private" in control
            or "no-store" in control
            or "etag" not in values
        ):
            return body
        try:
            data = b"".join(body)
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
        # A response read before the database file was replaced is never kept.
        if self.state.generation == generation:
            etag = next(v for k, v in headers if k.lower() == "etag")
            self.state.responses.put(key, Replayed(headers, data, etag, rule))
        return [data]
