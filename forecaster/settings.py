"""Configuration: one frozen pydantic-settings model, read from the environment in one place.

Each variable is declared once, as a field: its type, default, bounds and description, with the
variable's name as the field's alias (`variable(...)`). The network's hyperparameters are the
nested `ModelParams` (forecaster.params), declared the same way. `Settings.from_env()` reads the
variables; a bad value is a ConfigError whose message is one line naming the variable
(forecaster.rules.one_line), never pydantic's report. A variable unset or blank keeps its
default. No other module reads stockcast's variables.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import BeforeValidator, Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from forecaster.errors import ConfigError
from forecaster.params import Integer, ModelParams
from forecaster.providers.base import PROVIDERS
from forecaster.rules import choice, one_line, replaced, rules, variable, variables
from forecaster.settings_types import (
    DEFAULT_FEATURES,
    Features,
    Tickers,
    boolean,
    broker,
    text_rule,
    with_legacy_executor,
)

SAMPLE_TICKERS: tuple[str, ...] = ("^GSPC", "GOOG")
EXECUTORS = ("local", "celery", "inline")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("json", "text")
SCOPES = ("ticker", "universe")


class Settings(BaseSettings):
    """Everything configurable. Build with `Settings.from_env()`; `replace()` for a variant."""

    model_config = SettingsConfigDict(
        frozen=True, extra="ignore", validate_default=False, validate_by_name=True
    )

    # --- data and storage
    data_dir: Path = variable(
        "STOCKCAST_DATA_DIR",
        "SQLite file, server pid/log, `prometheus/PORT` metrics folder",
        default=Path("data"),
    )
    # empty -> SQLite file in data_dir (see resolved_database_url)
    database_url: str = variable(
        "DATABASE_URL",
        "SQLAlchemy URL; PostgreSQL: `postgresql+psycopg://user:pass@host/db`",
        default="",
    )
    keep_versions: Integer = variable(
        "STOCKCAST_KEEP_VERSIONS",
        "model artifacts kept per ticker besides the champion's (older versions keep their figures)",
        default=5,
        ge=1,
    )
    default_provider: Annotated[str, BeforeValidator(choice(PROVIDERS))] = variable(
        "STOCKCAST_PROVIDER",
        "default provider for backfills and `tickers add` / `import`",
        default="sample",
    )
    # Seeds the tracked tickers of a fresh database only (forecaster.universe); afterwards the
    # database says what the pipeline processes (`stockcast tickers add/remove/import`).
    tickers: Tickers = variable(
        "STOCKCAST_TICKERS",
        "seeds the tracked tickers of a fresh database only",
        default=SAMPLE_TICKERS,
    )

    # --- windows
    window: Integer = variable("STOCKCAST_WINDOW", "window length (trading days)", default=7, ge=2)
    features: Features = variable("STOCKCAST_FEATURES", "window features", default=DEFAULT_FEATURES)

    # --- model / training: the network's hyperparameters, passed whole (forecaster.params)
    model: ModelParams = Field(default_factory=ModelParams)
    model_scope: Annotated[str, BeforeValidator(choice(SCOPES))] = variable(
        "STOCKCAST_MODEL_SCOPE",
        "`universe`: one network for every tracked ticker; `ticker`: one network per ticker",
        default="universe",
    )
    ensemble: Integer = variable(
        "STOCKCAST_ENSEMBLE",
        "universe scope: networks (seeds) whose mean forecast serves",
        default=3,
        ge=1,
        le=10,
    )
    val_fraction: float = variable(
        "STOCKCAST_VAL_FRACTION",
        "newest share of each fit's windows used for early stopping",
        rule="must be between 0 and 0.5",
        default=0.15,
        gt=0,
        lt=0.5,
        allow_inf_nan=False,
    )

    # --- rolling-origin backtest and the serving rule (forecaster.backtest, forecaster.policy)
    backtest_days: Integer = variable(
        "STOCKCAST_BACKTEST_DAYS",
        "forecasts in the rolling-origin backtest, where history allows",
        default=500,
        ge=10,
    )
    backtest_refit_every: Integer = variable(
        "STOCKCAST_BACKTEST_REFIT_EVERY",
        "days per backtest fold (one refit per fold)",
        default=125,
        ge=1,
    )
    backtest_every_days: Integer = variable(
        "STOCKCAST_BACKTEST_EVERY_DAYS",
        "new trading days after which the full backtest runs again (0: every training)",
        default=21,
        ge=0,
    )
    # A quiet night fine-tunes the newest version's network for this many epochs on all days
    # instead of refitting from scratch (0: refit from scratch).
    warm_start_epochs: Integer = variable(
        "STOCKCAST_WARM_START_EPOCHS",
        "epochs a quiet night fine-tunes the newest network (0: refit from scratch)",
        default=3,
        ge=0,
    )
    min_backtest_forecasts: Integer = variable(
        "STOCKCAST_MIN_BACKTEST_FORECASTS",
        "backtest forecasts needed before the network may serve",
        default=250,
        ge=0,
    )
    skill_alpha: float = variable(
        "STOCKCAST_SKILL_ALPHA",
        "the network serves only if its DM p-value vs the best baseline is below this",
        rule="must be in (0, 1]",
        default=0.05,
        gt=0,
        le=1,
        allow_inf_nan=False,
    )
    live_min_forecasts: Integer = variable(
        "STOCKCAST_LIVE_MIN_FORECASTS",
        "scored live forecasts before the live record may demote a serving network",
        default=60,
        ge=2,
    )
    interval_coverage: float = variable(
        "STOCKCAST_INTERVAL_COVERAGE",
        "nominal coverage of the prediction interval",
        rule="must be between 0 and 1",
        default=0.9,
        gt=0,
        lt=1,
        allow_inf_nan=False,
    )

    # --- data integrity (forecaster.ingest)
    revision_overlap_days: Integer = variable(
        "STOCKCAST_REVISION_OVERLAP_DAYS",
        "newest stored days each fetch reads again to notice revised history (0: off)",
        default=10,
        ge=0,
        le=250,
    )
    revision_tolerance: float = variable(
        "STOCKCAST_REVISION_TOLERANCE",
        "relative change of a stored price beyond which the provider revised history",
        rule="must be between 0 and 1",
        default=1e-4,
        gt=0,
        lt=1,
        allow_inf_nan=False,
    )
    suspect_move: float = variable(
        "STOCKCAST_SUSPECT_MOVE",
        "one-day |log return| beyond which an unexplained move makes a ticker suspect",
        rule="must be positive",
        default=0.4,
        gt=0,
        allow_inf_nan=False,
    )

    # --- yfinance
    yf_max_retries: Integer = variable(
        "STOCKCAST_YF_MAX_RETRIES", "yfinance retries", default=5, ge=0
    )
    yf_backoff_base: float = variable(
        "STOCKCAST_YF_BACKOFF_BASE",
        "yfinance first back-off (seconds)",
        rule="must be a number >= 0",
        default=1.0,
        ge=0,
        allow_inf_nan=False,
    )
    yf_backoff_cap: float = variable(
        "STOCKCAST_YF_BACKOFF_CAP",
        "yfinance longest back-off (seconds)",
        rule="must be a number >= 0",
        default=60.0,
        ge=0,
        allow_inf_nan=False,
    )
    yf_auto_adjust: Annotated[bool, text_rule(boolean)] = variable(
        "STOCKCAST_YF_AUTO_ADJUST", "store adjusted OHLC from yfinance", default=False
    )

    # --- pipeline: where each ticker's step runs (jobs.executors)
    executor: Annotated[str, BeforeValidator(choice(EXECUTORS))] = variable(
        "STOCKCAST_EXECUTOR",
        "where each step runs: `local` worker pool, `celery` workers, `inline`",
        default="local",
    )
    workers: Integer = variable(
        "STOCKCAST_WORKERS", "local pool size (0: the core count)", default=0, ge=0
    )
    worker_max_tasks: Integer = variable(
        "STOCKCAST_WORKER_MAX_TASKS",
        "tickers a worker process handles before it is replaced",
        # A fresh process costs ~5 s (TensorFlow import, one trace per architecture); one that
        # handled 250 quiet-night tickers had grown 25 MiB (bench/universe.py --max-tasks).
        default=200,
        ge=1,
    )
    tf_threads: Integer = variable(
        "STOCKCAST_TF_THREADS",
        "TensorFlow threads per worker process (0: the cores shared out among the workers)",
        default=0,
        ge=0,
    )
    worker_concurrency: Integer = variable(
        "STOCKCAST_WORKER_CONCURRENCY",
        "steps a Celery worker runs at once (0: the core count; `stockcast worker --concurrency`)",
        default=0,
        ge=0,
    )
    broker_url: Annotated[str, text_rule(broker)] = variable(
        "STOCKCAST_BROKER_URL",
        "Celery broker and result store (Redis)",
        default="redis://127.0.0.1:6379/0",
    )
    celery_queue: str = variable(
        "STOCKCAST_CELERY_QUEUE", "Celery queue of the steps", default="stockcast"
    )
    step_timeout_seconds: Integer = variable(
        "STOCKCAST_STEP_TIMEOUT_SECONDS",
        "a step running longer is killed and recorded as failed",
        default=3600,
        ge=1,
    )
    max_deliveries: Integer = variable(
        "STOCKCAST_MAX_DELIVERIES",
        "deliveries of a Celery step before it is failed as poison (its worker died each time)",
        default=3,
        ge=1,
    )
    run_stale_seconds: Integer = variable(
        "STOCKCAST_RUN_STALE_SECONDS",
        "a `running` run without a heartbeat this long is marked failed",
        default=900,
        ge=60,
    )
    # Client-side deadline for connecting to the database and for each of its answers (and the
    # PostgreSQL statement_timeout): a frozen server gives errors, never hung requests.
    db_timeout_seconds: float = variable(
        "STOCKCAST_DB_TIMEOUT_SECONDS",
        "deadline on each database connect and answer; PostgreSQL statement_timeout",
        rule="must be between 1 and 3600",
        default=2.0,
        ge=1,
        le=3600,
        allow_inf_nan=False,
    )
    use_gpu: Annotated[bool, text_rule(boolean)] = variable(
        "STOCKCAST_USE_GPU",
        "let TensorFlow see GPUs (these tiny networks are faster on the CPU)",
        default=False,
    )

    # --- scheduler
    schedule_cron: str = variable(
        "STOCKCAST_SCHEDULE_CRON", "nightly schedule", default="30 18 * * mon-fri"
    )
    schedule_timezone: str = variable(
        "STOCKCAST_SCHEDULE_TIMEZONE", "time zone of the schedule", default="America/New_York"
    )
    misfire_grace_seconds: Integer = variable(
        "STOCKCAST_MISFIRE_GRACE_SECONDS",
        "how late a missed nightly run may still start",
        default=6 * 3600,
        ge=1,
    )
    exchange_calendar: str = variable(
        "STOCKCAST_EXCHANGE_CALENDAR",
        "trading calendar for target dates and skipped days",
        default="XNYS",
    )

    # --- api
    api_cache_max_age: Integer = variable(
        "STOCKCAST_API_CACHE_MAX_AGE", "HTTP cache lifetime (seconds)", default=60, ge=0
    )
    api_response_ttl: float = variable(
        "STOCKCAST_API_RESPONSE_TTL",
        "seconds an API worker replays a latest forecast or chart series it sent (0: off)",
        rule="must be a number >= 0",
        default=5.0,
        ge=0,
        allow_inf_nan=False,
    )
    api_max_limit: Integer = variable("STOCKCAST_API_MAX_LIMIT", "largest page", default=1000, ge=1)

    api_host: str = variable("STOCKCAST_API_HOST", "`stockcast serve` address", default="127.0.0.1")
    api_port: Integer = variable(
        "STOCKCAST_API_PORT", "`stockcast serve` port", default=8000, ge=1, le=65535
    )
    api_workers: Integer = variable(
        "STOCKCAST_API_WORKERS",
        "`stockcast serve` worker processes (0: the core count)",
        default=0,
        ge=0,
        le=64,
    )
    api_threads: Integer = variable(
        "STOCKCAST_API_THREADS", "`stockcast serve` threads per worker", default=4, ge=1, le=64
    )
    # prometheus_client's own variable: the library reads it at import time; stockcast reads
    # it here only (`stockcast serve` sets it for gunicorn: DATA_DIR/prometheus/PORT).
    metrics_dir: Path | None = variable(
        "PROMETHEUS_MULTIPROC_DIR",
        "folder the API workers share for /metrics (multiprocess mode)",
        default=None,
    )

    # --- logging
    log_level: Annotated[str, BeforeValidator(choice(LOG_LEVELS, str.upper))] = variable(
        "STOCKCAST_LOG_LEVEL", "logging level", default="INFO"
    )
    log_format: Annotated[str, BeforeValidator(choice(LOG_FORMATS))] = variable(
        "STOCKCAST_LOG_FORMAT", "`json` lines or `text`", default="json"
    )

    # --- derived values ------------------------------------------------------------------

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'stockcast.db').resolve()}"

    def replace(self, **changes: Any) -> Self:
        """A copy with `changes` (field names), validated like the original (ConfigError)."""
        try:
            return replaced(self, changes)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    # --- reading the environment ---------------------------------------------------------

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # `Settings()` is the defaults; only from_env() reads variables, and never a .env file
        # or a secrets folder behind the caller's back.
        return (init_settings,)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the variables (os.environ, or a test's mapping); unset or blank keeps a default."""
        source = os.environ if env is None else env
        given = {k: v.strip() for k, v in source.items() if v.strip()}  # blank: unset
        given = with_legacy_executor(given, EXECUTORS)
        names, model_names = variables(cls), variables(ModelParams)
        values: dict[str, Any] = {k: v for k, v in given.items() if k in names}
        model = {k: v for k, v in given.items() if k in model_names}
        try:
            return cls.model_validate({**values, "model": model})
        except ValidationError as exc:
            raise ConfigError(one_line(exc, rules(cls) | rules(ModelParams))[1]) from None
