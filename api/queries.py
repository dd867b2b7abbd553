"""The query strings of the HTTP contract: a pydantic model per endpoint that takes parameters,
validated by `api.params.parse_query` (one-line errors, unknown parameters refused) and turned
into /openapi.json's query parameters (api/openapi.py)."""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)

from forecaster import documents, series_document
from forecaster.errors import InvalidTicker
from forecaster.policy import METHODS
from forecaster.providers.base import TICKER_PATTERN as SYMBOL_PATTERN
from forecaster.providers.base import normalize_ticker
from forecaster.rules import fail, shown

Method = documents.Method

# --- queries ---------------------------------------------------------------------------------
#
# Query values arrive as strings. Each parameter type parses with the service's own strict rules
# (ASCII digits only, YYYY-MM-DD only) and fails with a PydanticCustomError whose type is the
# API error code and whose message is the one line a client sees: pydantic's own wording never
# reaches a response. Its JSON Schema is what /openapi.json documents for the parameter.

MAX_OFFSET = 10_000_000
SERIES_MAX_LIMIT = series_document.MAX_LIMIT
SUMMARY_MAX_LIMIT = 500
RUNS_MAX_LIMIT = 200
SUMMARY_STATUSES = ("stale", "fresh", "suspect", "failed")
_SORT_COLUMNS = ("ticker", "change", "method", "mae_ratio", "as_of", "last_run")
SUMMARY_SORTS = tuple(p + c for c in _SORT_COLUMNS for p in ("", "-"))
# In a parameter's schema: its maximum is STOCKCAST_API_MAX_LIMIT (api/openapi.py fills it in).
SETTINGS_MAXIMUM = "x-maximum-from-settings"

_DIGITS = re.compile(r"[0-9]{1,9}")  # ASCII digits only: no sign, underscore or other scripts
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_SYMBOL_PART = re.compile(r"\^?[A-Za-z0-9.\-=]{1,20}")  # a piece of a symbol (the ticker alphabet)
# The symbol rule (forecaster.providers.base) in either case: lower case is accepted, upper-cased.
TICKER_PATTERN = SYMBOL_PATTERN.pattern.replace("A-Z", "A-Za-z")
Q_MAX_LENGTH = 40


def _date(raw: Any, info: ValidationInfo) -> date:
    try:
        if not isinstance(raw, str) or not _DATE.fullmatch(raw):
            raise ValueError(raw)
        return date.fromisoformat(raw)
    except ValueError:
        raise fail(
            "bad_date", f"{info.field_name} must be a date like 2018-12-31, got {shown(str(raw))}"
        ) from None


def _integer(minimum: int, maximum: int | None) -> BeforeValidator:
    """maximum None: the configured STOCKCAST_API_MAX_LIMIT, given in the validation context."""

    def parse(raw: Any, info: ValidationInfo) -> int:
        name = info.field_name
        if not isinstance(raw, str) or not _DIGITS.fullmatch(raw):
            raise fail("bad_parameter", f"{name} must be an integer, got {shown(str(raw))}")
        value = int(raw)
        top = maximum if maximum is not None else (info.context or {})["max_limit"]
        if not minimum <= value <= top:
            raise fail("bad_parameter", f"{name} must be between {minimum} and {top}, got {value}")
        return value

    return BeforeValidator(parse)


QueryDate = Annotated[
    date | None, BeforeValidator(_date), WithJsonSchema({"type": "string", "format": "date"})
]
Offset = Annotated[
    int,
    _integer(0, MAX_OFFSET),
    WithJsonSchema({"type": "integer", "minimum": 0, "maximum": MAX_OFFSET}),
]


def _page_size(maximum: int | None) -> Any:
    """A `limit` from 1 to maximum (None: to the configured STOCKCAST_API_MAX_LIMIT)."""
    schema: dict[str, Any] = {"type": "integer", "minimum": 1}
    schema.update({"maximum": maximum} if maximum is not None else {SETTINGS_MAXIMUM: True})
    return Annotated[int, _integer(1, maximum), WithJsonSchema(schema)]


PageSize = _page_size(None)
SeriesPageSize = _page_size(SERIES_MAX_LIMIT)
SummaryPageSize = _page_size(SUMMARY_MAX_LIMIT)
RunsPageSize = _page_size(RUNS_MAX_LIMIT)


def _choice(name: str, options: tuple[str, ...]) -> BeforeValidator:
    def parse(raw: Any) -> str:
        if raw not in options:
            raise fail(
                "bad_parameter",
                f"{name} must be one of {', '.join(options)}, got {shown(str(raw))}",
            )
        return str(raw)

    return BeforeValidator(parse)


def _tracked(raw: Any) -> bool:
    if raw not in ("true", "false"):
        raise fail("bad_parameter", f"tracked must be true or false, got {shown(str(raw))}")
    return raw == "true"


def _symbol_part(raw: Any) -> str:
    if not isinstance(raw, str) or not _SYMBOL_PART.fullmatch(raw):
        raise fail(
            "bad_parameter",
            f"q must be 1 to 20 symbol characters (A-Z 0-9 . - = ^), got {shown(str(raw))}",
        )
    return raw.upper()


def _search(raw: Any, info: ValidationInfo) -> str | None:
    """A short free-text search term; control characters are refused (PostgreSQL refuses NUL)."""
    if not isinstance(raw, str) or raw.strip() == "":
        return None
    if len(raw) > Q_MAX_LENGTH or any(unicodedata.category(c) == "Cc" for c in raw):
        raise fail(
            "bad_parameter",
            f"{info.field_name} must be at most {Q_MAX_LENGTH} printable characters, "
            f"got {shown(raw)}",
        )
    return raw.strip()


def _ticker(raw: Any) -> str:
    """The path symbol's rules: lower case accepted, surrounding whitespace not."""
    try:
        if not isinstance(raw, str) or raw != raw.strip():
            raise InvalidTicker(str(raw))
        return normalize_ticker(raw)
    except InvalidTicker as exc:
        raise fail(exc.code, str(exc)) from None


class Query(BaseModel):
    """Base of every query string: unknown parameters are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoQuery(Query):
    """Endpoints that take no query parameter."""


class DateRange(Query):
    start: QueryDate = Field(None, description="First date (inclusive), YYYY-MM-DD.")
    end: QueryDate = Field(
        None, description="Last date (inclusive), YYYY-MM-DD; must not be before start."
    )

    @model_validator(mode="after")
    def _ordered(self) -> DateRange:
        if self.start and self.end and self.start > self.end:
            raise fail("bad_date_range", f"start {self.start} is after end {self.end}")
        return self


class HistoryQuery(DateRange):
    kind: Annotated[
        Literal["all", "live", "backtest"],
        _choice("kind", ("all", "live", "backtest")),
        WithJsonSchema({"type": "string", "enum": ["all", "live", "backtest"]}),
    ] = Field("all", description="live, backtest or all (start/end bound the as-of day).")
    method: Annotated[
        Method | None,
        _choice("method", METHODS),
        WithJsonSchema({"type": "string", "enum": list(METHODS)}),
    ] = Field(None, description="Only the forecasts of this method.")
    format: Annotated[
        Literal["json", "csv"] | None,
        _choice("format", ("json", "csv")),
        WithJsonSchema({"type": "string", "enum": ["json", "csv"]}),
    ] = Field(
        None,
        description="csv: every matching row as text/csv, without paging (also with "
        "`Accept: text/csv`); default JSON pages.",
    )
    limit: PageSize = Field(100, description="Page size (JSON).")  # type: ignore[valid-type]
    offset: Offset = Field(0, description="Rows to skip (JSON).")


class PriceQuery(DateRange):
    limit: PageSize = Field(100, description="Page size.")  # type: ignore[valid-type]


class SeriesQuery(DateRange):
    limit: SeriesPageSize = Field(SERIES_MAX_LIMIT, description="Page size.")  # type: ignore[valid-type]


class TickerQuery(Query):
    q: Annotated[
        str | None,
        BeforeValidator(_symbol_part),
        WithJsonSchema({"type": "string", "pattern": f"^{_SYMBOL_PART.pattern}$"}),
    ] = Field(None, description="Only symbols containing this text (case-insensitive), e.g. GOO.")
    tracked: Annotated[
        bool | None, BeforeValidator(_tracked), WithJsonSchema({"type": "boolean"})
    ] = Field(
        None, description="true: only tracked tickers; false: only tickers no longer tracked."
    )
    limit: PageSize = Field(100, description="Page size.")  # type: ignore[valid-type]
    offset: Offset = Field(0, description="Rows to skip.")


class SummaryQuery(Query):
    q: Annotated[
        str | None,
        BeforeValidator(_search),
        WithJsonSchema(
            {
                "type": "string",
                "maxLength": Q_MAX_LENGTH,
                "pattern": r"^[^\u0000-\u001f\u007f-\u009f]*$",
            }
        ),
    ] = Field(None, description="Case-insensitive part of the symbol or name.")
    method: Annotated[
        Method | None,
        _choice("method", METHODS),
        WithJsonSchema({"type": "string", "enum": list(METHODS)}),
    ] = Field(None, description="Only tickers whose newest forecast this method made.")
    status: Annotated[
        Literal["stale", "fresh", "suspect", "failed"] | None,
        _choice("status", SUMMARY_STATUSES),
        WithJsonSchema({"type": "string", "enum": list(SUMMARY_STATUSES)}),
    ] = Field(None, description="Only stale, fresh, suspect or failed (newest step) tickers.")
    sort: Annotated[
        str,
        _choice("sort", SUMMARY_SORTS),
        WithJsonSchema({"type": "string", "enum": list(SUMMARY_SORTS)}),
    ] = Field(
        "ticker",
        description="Column to sort by; a leading '-' sorts descending. Missing values last.",
    )
    limit: SummaryPageSize = Field(50, description="Page size.")  # type: ignore[valid-type]
    offset: Offset = Field(0, description="Rows to skip.")


class RunQuery(Query):
    limit: RunsPageSize = Field(20, description="Page size.")  # type: ignore[valid-type]
    offset: Offset = Field(0, description="Rows to skip.")
    ticker: Annotated[
        str | None,
        BeforeValidator(_ticker),
        WithJsonSchema({"type": "string", "pattern": TICKER_PATTERN, "maxLength": 21}),
    ] = Field(None, description="Only the runs that had a step for this ticker.")
