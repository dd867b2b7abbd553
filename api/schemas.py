"""The HTTP contract in one place: pydantic models for every response body and query string.

The forecast document's models (Forecast and what it nests) live in forecaster/documents.py,
because the service renders that document when it stores a forecast; they are re-exported here,
so this module still names every response model.

Views build the response models and send them with `api.params.respond` (`model_dump(mode="json")`
through Flask's JSON provider); `api.params.parse_query` validates `request.args` with the query
models; `/openapi.json` takes its components and query parameters from these models' JSON Schemas
(api/openapi.py). Enumerations come from the module that owns the values.

Numbers are rounded by the builders (api/serialize.py, forecaster/documents.py) with `num()`,
which also turns NaN and infinities into null: strict JSON never carries them.
"""

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
from forecaster.storage import RUN_STATUSES, STEP_STATUSES

# The forecast document's models and types, re-exported: the API and /openapi.json name them here.
Schema = documents.Schema
UtcDatetime = documents.UtcDatetime
Method = documents.Method
Baseline = documents.Baseline
ModelStatus = documents.ModelStatus
Interval = documents.Interval
BaselineFigures = documents.BaselineFigures
Backtest = documents.Backtest
ModelSummary = documents.ModelSummary
Forecast = documents.Forecast
# The chart series' models (forecaster/series_document.py: the pipeline renders that document).
Suspect = series_document.Suspect
SeriesCloses = series_document.SeriesCloses
SeriesForecasts = series_document.SeriesForecasts
SeriesBacktest = series_document.SeriesBacktest
Action = series_document.Action
Series = series_document.Series

StepStatus = Literal[STEP_STATUSES]  # type: ignore[valid-type]

# --- responses -------------------------------------------------------------------------------


class ErrorDetail(Schema):
    code: str
    message: str


class Error(Schema):
    """Every failure, whatever the status."""

    error: ErrorDetail


class ModelVersion(ModelSummary):
    champion: bool
    rejection_reason: str | None
    promoted_at: UtcDatetime | None
    train_start: date
    train_end: date
    n_train: int
    train_seconds: float | None
    interval_halfwidth_log: float | None
    interval_coverage: float | None
    config: dict[str, Any]
    evaluation: dict[str, Any]


class ModelList(Schema):
    ticker: str
    champion_version: int | None
    live: documents.Live | None = Field(
        description="The champion's live record: every method's forecasts after its backtest."
    )
    models: list[ModelVersion] = Field(description="Newest first, at most 100.")


class HistoryItem(Schema):
    """A stored forecast: `live` (served that night) or `backtest` (out of sample, every method,
    from the newest full backtest)."""

    kind: Literal["live", "backtest"]
    as_of: date
    target_date: date
    predicted_close: float
    interval: Interval | None = Field(
        description="null for a backtest's first fold, which had no earlier fold to calibrate on."
    )
    last_close: float
    actual_close: float | None
    error: float | None
    abs_error: float | None
    persistence_abs_error: float | None
    within_interval: bool | None
    method: Method
    model_version: int = Field(description="The version that made it (backtest: whose it is).")
    fold: int | None = Field(description="The backtest fold (0 = oldest); null for live.")


class ForecastHistory(Schema):
    ticker: str
    total: int
    limit: int
    offset: int
    next_offset: int | None
    forecasts: list[HistoryItem] = Field(description="Newest first.")


class Price(Schema):
    date: date
    open: float
    high: float
    low: float
    close: float
    adj_close: float | None
    volume: float
    source: str
    adjusted: bool


class PricePage(Schema):
    ticker: str
    count: int
    limit: int
    truncated: bool
    prices: list[Price]


class LastForecast(Schema):
    as_of: date
    target_date: date
    predicted_close: float | None
    method: Method


class Ticker(Schema):
    ticker: str
    tracked: bool = Field(
        description="Processed by the nightly pipeline; false: removed from the universe, its "
        "stored data kept."
    )
    provider: str
    rows: int
    first_date: date | None
    last_date: date | None
    last_close: float | None
    champion_version: int | None
    last_forecast: LastForecast | None
    last_run_status: StepStatus | None = Field(
        description="Status of the ticker's newest pipeline step."
    )


class TickerPage(Schema):
    total: int
    limit: int
    offset: int
    next_offset: int | None
    tickers: list[Ticker]


class Step(Schema):
    ticker: str
    status: StepStatus
    started_at: UtcDatetime
    finished_at: UtcDatetime | None
    duration_seconds: float | None
    rows_fetched: int | None
    rows_inserted: int | None
    rows_rejected: int | None
    model_version_id: int | None
    promoted: bool | None
    detail: str | None
    error_code: str | None
    error: str | None = Field(
        description="Public text of the failure; full detail: `stockcast runs show ID`."
    )
    worker: str | None = Field(
        description="Opaque name of the worker that ran the step (a local pool slot, or a Celery "
        "worker's name)."
    )


class Run(Schema):
    id: int
    kind: str
    trigger: str
    status: Literal[RUN_STATUSES]  # type: ignore[valid-type]
    started_at: UtcDatetime
    finished_at: UtcDatetime | None
    tickers: list[str]
    error_code: str | None
    error: str | None
    steps: list[Step]


class RunPage(Schema):
    total: int
    limit: int
    offset: int
    runs: list[Run]


class SummaryForecast(Schema):
    as_of: date
    target_date: date
    predicted_close: float
    predicted_change_pct: float
    interval: Interval
    last_close: float
    method: Method


class Skill(Schema):
    """The network's rolling-origin backtest of the version that made the forecast (else the
    champion): MAE ratio and one-sided Diebold-Mariano p-value vs persistence and vs the best
    baseline."""

    model_version: int
    method: Method
    mae_ratio: float | None
    dm_pvalue: float | None
    best_baseline: Baseline | None
    best_baseline_mae_ratio: float | None
    dm_best_pvalue: float | None
    n_forecasts: int | None
    backtest_end: date | None


class Freshness(Schema):
    """last_session: the exchange's last session before today. stale: no forecast, or one made
    before that session or before the newest stored close (behind_data)."""

    forecast_as_of: date | None
    last_session: date
    sessions_behind: int | None
    behind_data: bool
    stale: bool


class LastRun(Schema):
    run_id: int
    status: StepStatus
    started_at: UtcDatetime
    finished_at: UtcDatetime | None
    duration_seconds: float | None
    detail: str | None
    error_code: str | None
    error: str | None


class SummaryRow(Schema):
    ticker: str
    name: str | None
    last_date: date | None
    last_close: float | None
    recent_closes: list[float | None] = Field(
        description="The newest closes (at most 30), oldest first."
    )
    forecast: SummaryForecast | None
    skill: Skill | None
    freshness: Freshness
    last_run: LastRun | None
    suspect: Suspect | None


class LastNight(Schema):
    """The newest pipeline run (a scheduled night or an operator's run-now)."""

    run_id: int
    kind: str
    trigger: str
    status: Literal[RUN_STATUSES]  # type: ignore[valid-type]
    started_at: UtcDatetime
    finished_at: UtcDatetime | None
    duration_seconds: float | None
    tickers: int
    failed: int = Field(description="Its steps that failed.")


class Universe(Schema):
    """The whole universe at a glance, whatever the page's filters."""

    tickers: int
    tracked: int
    served_by_network: int = Field(description="Tickers whose newest forecast the network made.")
    stale: int
    failed: int = Field(description="Tickers whose newest pipeline step failed.")
    suspect: int
    methods: dict[str, int] = Field(description="Tickers by the method of their newest forecast.")
    last_night: LastNight | None


class SummaryPage(Schema):
    last_session: date
    total: int = Field(description="Tickers matching q, method and status.")
    limit: int
    offset: int
    next_offset: int | None
    sort: str
    universe: Universe
    tickers: list[SummaryRow]


class Health(Schema):
    status: str


class Ready(Schema):
    status: str
    database: str
    revision: str


# Every response body, in the order /openapi.json lists them (nested models follow via $defs).
RESPONSES: tuple[type[Schema], ...] = (
    Error,
    TickerPage,
    Forecast,
    ForecastHistory,
    ModelList,
    PricePage,
    SummaryPage,
    Series,
    RunPage,
    Health,
    Ready,
)


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
