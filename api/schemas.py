"""The HTTP contract's bodies: pydantic models for every response body (the query strings:
api/queries.py).

The forecast document's models (Forecast and what it nests) live in forecaster/documents.py,
because the service renders that document when it stores a forecast; they are re-exported here,
so this module still names every response model.

Views build the response models and send them with `api.params.respond` (`model_dump(mode="json")`
through Flask's JSON provider); `/openapi.json` takes its components from these models' JSON
Schemas (api/openapi.py). Enumerations come from the module that owns the values.

Numbers are rounded with `num()`, which also turns NaN and infinities into null (strict JSON
never carries them): by the builders (api/serialize.py, forecaster/documents.py), or by the
`rounded` fields of the models that views validate straight from stored rows.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self

from pydantic import BeforeValidator, Field, model_validator

from forecaster import documents, series_document
from forecaster.errors import public_error
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


def rounded(digits: int) -> BeforeValidator:
    """A number rounded to `digits` (documents.num) as a row is validated into its model."""
    return BeforeValidator(lambda value: documents.num(value, digits))


Rounded4 = Annotated[float, rounded(4)]


# Price, Step, Run and LastRun are validated straight from stored rows
# (`model_validate(row, from_attributes=True)`); comments, not docstrings: a docstring would
# become the component's description in /openapi.json.
class Price(Schema):
    date: date
    open: Rounded4
    high: Rounded4
    low: Rounded4
    close: Rounded4
    adj_close: Annotated[float | None, rounded(4)]
    volume: Annotated[float, rounded(0)]
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


class PublicError(Schema):
    # `error` as a public client may see it (errors.public_error of the stored code and text),
    # whatever order the fields are declared in: never the stored text itself, which may hold
    # paths, SQL or host names. The fields are the subclasses' own (their order is the body's).
    if TYPE_CHECKING:
        error_code: str | None
        error: str | None

    @model_validator(mode="after")
    def _public(self) -> Self:
        self.error = public_error(self.error_code, self.error)
        return self


class Step(PublicError):
    ticker: str
    status: StepStatus
    started_at: UtcDatetime
    finished_at: UtcDatetime | None
    duration_seconds: Annotated[float | None, rounded(3)]
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


class Run(PublicError):
    id: int
    kind: str
    trigger: str
    status: Literal[RUN_STATUSES]  # type: ignore[valid-type]
    started_at: UtcDatetime
    finished_at: UtcDatetime | None
    tickers: Annotated[list[str], BeforeValidator(lambda value: list(value or []))]
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
    predicted_close: Rounded4
    predicted_change_pct: float
    interval: Interval
    last_close: Rounded4
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


class LastRun(PublicError):
    run_id: int
    status: StepStatus
    started_at: UtcDatetime
    finished_at: UtcDatetime | None
    duration_seconds: Annotated[float | None, rounded(3)]
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
