"""Strict query-string parsing with the query models of api/queries.py, and sending a response
model. Unknown or repeated parameters, bad dates and out-of-range numbers are 400s with the one
JSON error shape and a one-line message."""

from __future__ import annotations

from typing import TypeVar, cast

from flask import Response, current_app, request
from pydantic import BaseModel, ValidationError

from api.errors import ApiError
from api.queries import Query
from forecaster.errors import InvalidTicker
from forecaster.providers.base import normalize_ticker
from forecaster.rules import one_line, shown

Q = TypeVar("Q", bound=Query)


def ticker_param(raw: str) -> str:
    """Validate the path symbol against the strict pattern before any query touches the database.

    Lower case is accepted (goog == GOOG); surrounding whitespace is not (the CLI strips it, a URL
    has no reason to carry it).
    """
    if raw != raw.strip():
        raise InvalidTicker(raw)
    return normalize_ticker(raw)


def parse_query(model: type[Q], max_limit: int | None = None) -> Q:
    """request.args validated by `model`; max_limit bounds a `limit` whose maximum is the
    configured STOCKCAST_API_MAX_LIMIT.

    Checked in this order, first failure wins: unknown parameters, repeated parameters, then each
    parameter in the model's field order, then the relations between them (start <= end).
    """
    try:
        query = model.model_validate(request.args.to_dict(), context={"max_limit": max_limit})
    except ValidationError as exc:
        failure = exc
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
    else:
        _reject_repeated()
        return query
    unknown = sorted(str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden")
    if unknown:
        names = ", ".join(shown(u) for u in unknown[:3]) + (", ..." if len(unknown) > 3 else "")
        allowed = ", ".join(sorted(model.model_fields)) or "none"
        raise ApiError(
            400, "bad_parameter", f"unknown query parameter(s): {names}; allowed: {allowed}"
        )
    _reject_repeated()
    kind, message = one_line(failure)  # the one formatter, as for the settings
    raise ApiError(400, kind if kind in _CODES else "bad_parameter", message)


# The error types our query validators raise (api/queries.py) and that are API error codes.
_CODES = frozenset({"bad_parameter", "bad_date", "bad_date_range", InvalidTicker.code})


def _reject_repeated() -> None:
    for key in request.args:
        if len(request.args.getlist(key)) > 1:
            raise ApiError(
                400, "bad_parameter", f"query parameter {shown(key)} given more than once"
            )


def respond(body: BaseModel) -> Response:
    """A response model as JSON, through Flask's provider (same bytes as jsonify of the dict)."""
    # The app's response_class (flask.Response), typed by Flask as werkzeug's base class.
    return cast(Response, current_app.json.response(body.model_dump(mode="json")))
