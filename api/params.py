"""Strict query-string parsing: unknown parameters, bad dates and out-of-range numbers are 400s."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date

from flask import request

from api.errors import ApiError
from forecaster.errors import InvalidTicker
from forecaster.providers.base import normalize_ticker

_DIGITS = re.compile(r"[0-9]{1,9}")  # ASCII digits only: no sign, underscore or other scripts
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def shown(raw: str, limit: int = 24) -> str:
    """User input echoed in an error, bounded."""
    return repr(raw if len(raw) <= limit else raw[:limit] + "...")


def ticker_param(raw: str) -> str:
    """Validate the path symbol against the strict pattern before any query touches the database.

    Lower case is accepted (goog == GOOG); surrounding whitespace is not (the CLI strips it, a URL
    has no reason to carry it).
    """
    if raw != raw.strip():
        raise InvalidTicker(raw)
    return normalize_ticker(raw)


def reject_unknown(allowed: Iterable[str]) -> None:
    allowed = set(allowed)
    unknown = sorted(set(request.args) - allowed)
    if unknown:
        names = ", ".join(shown(u) for u in unknown[:3]) + (", ..." if len(unknown) > 3 else "")
        raise ApiError(
            400,
            "bad_parameter",
            f"unknown query parameter(s): {names}; allowed: {', '.join(sorted(allowed)) or 'none'}",
        )
    for key in request.args:
        if len(request.args.getlist(key)) > 1:
            raise ApiError(
                400, "bad_parameter", f"query parameter {shown(key)} given more than once"
            )


def date_arg(name: str) -> date | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    try:
        if not _DATE.fullmatch(raw):
            raise ValueError(raw)
        return date.fromisoformat(raw)
    except ValueError:
        raise ApiError(
            400, "bad_date", f"{name} must be a date like 2018-12-31, got {shown(raw)}"
        ) from None


def date_range() -> tuple[date | None, date | None]:
    start, end = date_arg("start"), date_arg("end")
    if start and end and start > end:
        raise ApiError(400, "bad_date_range", f"start {start} is after end {end}")
    return start, end


def int_arg(name: str, default: int, minimum: int, maximum: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not _DIGITS.fullmatch(raw):
        raise ApiError(400, "bad_parameter", f"{name} must be an integer, got {shown(raw)}")
    value = int(raw)
    if not minimum <= value <= maximum:
        raise ApiError(
            400, "bad_parameter", f"{name} must be between {minimum} and {maximum}, got {value}"
        )
    return value
