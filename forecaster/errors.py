"""Domain exceptions. Messages are built here so every caller (CLI, API, jobs) says the same thing."""

from __future__ import annotations


class StockcastError(Exception):
    """Base class for every error stockcast reports to a user."""

    code = "stockcast_error"


class ConfigError(StockcastError):
    code = "bad_config"


class InvalidTicker(StockcastError):
    code = "invalid_ticker"

    def __init__(self, ticker: str) -> None:
        shown = ticker if len(ticker) <= 24 else ticker[:24] + "..."  # bounded echo of user input
        super().__init__(f"malformed ticker symbol {shown!r}")
        self.ticker = ticker


class UnknownTicker(StockcastError):
    code = "unknown_ticker"

    def __init__(self, ticker: str, detail: str = "") -> None:
        message = f"unknown ticker {ticker!r}"
        super().__init__(f"{message}: {detail}" if detail else message)
        self.ticker = ticker


class InvalidDateRange(StockcastError):
    code = "bad_date_range"


class UnknownProvider(StockcastError):
    code = "unknown_provider"

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown provider {name!r} (known: {', '.join(sorted(known))})")
        self.name = name


class ProviderError(StockcastError):
    """The data source failed (network, rate limit past the retry cap, malformed response)."""

    code = "provider_error"


class RateLimited(ProviderError):
    code = "rate_limited"


class ValidationFailed(StockcastError):
    """A batch of prices failed validation and --strict was asked for: nothing was stored."""

    code = "validation_failed"


class NotDaily(StockcastError):
    """Bars spaced like weekly or monthly data: the service forecasts the next trading day."""

    code = "not_daily"

    def __init__(self, ticker: str, median_days: float) -> None:
        super().__init__(
            f"{ticker}: the bars are not daily (median spacing {median_days:g} calendar days; "
            "weekly or monthly data?): stockcast forecasts the next trading day from daily bars"
        )
        self.ticker = ticker
        self.median_days = median_days


class InsufficientHistory(StockcastError):
    code = "insufficient_history"

    def __init__(self, ticker: str, have: int, need: int) -> None:
        super().__init__(
            f"{ticker}: {have} stored trading days, at least {need} are needed to train and evaluate"
        )
        self.ticker = ticker
        self.have = have
        self.need = need


class NoChampion(StockcastError):
    code = "no_champion"

    def __init__(self, ticker: str) -> None:
        super().__init__(f"{ticker}: no champion model yet; run `stockcast train {ticker}` first")
        self.ticker = ticker


class ModelArtifactError(StockcastError):
    code = "model_artifact_error"


class ModelRejected(StockcastError):
    """A training produced no usable backtest figures: nothing is saved, the champion stays."""

    code = "model_rejected"


class DatabaseUnavailable(StockcastError):
    code = "database_unavailable"


class LockBusy(StockcastError):
    """Another process holds the pipeline lock for this ticker."""

    code = "lock_busy"

    def __init__(self, name: str, owner: str | None = None) -> None:
        who = f" (held by {owner})" if owner else ""
        super().__init__(f"lock {name!r} is held by another run{who}")
        self.name = name
        self.owner = owner


# What a public client (GET /v1/runs) may read about a failure. Messages of the codes in SAFE are
# built above from tickers, dates and counts only; every other code gets its fixed text, and the
# full detail stays in the logs and `stockcast runs show ID` (paths, SQL, host names, traces).
SAFE_CODES = frozenset(
    {
        "invalid_ticker",
        "unknown_ticker",
        "bad_date_range",
        "validation_failed",
        "not_daily",
        "insufficient_history",
        "no_champion",
        "model_rejected",
        "config_mismatch",  # built from configuration values only (jobs.executors.base)
    }
)
PUBLIC_TEXT = {
    "provider_error": "the data provider failed",
    "rate_limited": "the data provider rate-limited the requests",
    "database_unavailable": "the database was unavailable",
    "model_artifact_error": "a model artifact could not be read or written",
    "bad_config": "the service configuration is invalid",
    "internal_error": "unexpected error",
    "step_crashed": "the step's process died before reporting",
    "timeout": "the step ran past its time limit and was stopped",
    "interrupted": "interrupted by a shutdown",
    "run_died": "the run's process died; a later run marked it failed",
    "broker_unavailable": "the task broker did not answer",
    "no_workers": "no worker was running to take the steps",
    "config_mismatch": "a worker's configuration differs from the run's; the step was refused",
    "poison": "every delivery of the step ended its worker; it was not delivered again",
}


def public_error(code: str | None, message: str | None) -> str | None:
    """The one-line failure text a public client may see (None when there was no failure)."""
    if not message and not code:
        return None
    if code in SAFE_CODES and message:
        line = message.splitlines()[0]
        return line if len(line) <= 200 else line[:200] + "..."
    return PUBLIC_TEXT.get(code or "", "failed") + " (details: `stockcast runs show`)"
