"""Configuration: one frozen Settings object, read from the environment in exactly one place.

The environment is read and validated by `_Environment`, a pydantic-settings model with one field
per variable, named as the variable: every value is parsed by the rule stated beside it, and the
first bad one is a ConfigError whose message is one line naming the variable (never pydantic's
multi-line report). A variable that is unset or blank keeps the Settings default.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, ValidationError, ValidationInfo
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from forecaster.errors import ConfigError, InvalidTicker
from forecaster.params import HIGHWAYS, ModelParams
from forecaster.providers.base import PROVIDERS, normalize_ticker

DEFAULT_FEATURES: tuple[str, ...] = ("open", "high", "low", "volume", "close")
SAMPLE_TICKERS: tuple[str, ...] = ("^GSPC", "GOOG")
EXECUTORS = ("local", "celery", "inline")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("json", "text")


@dataclass(frozen=True)
class Settings:
    """Everything configurable. Build with `Settings.from_env()`; tests use `replace()`."""

    data_dir: Path = Path("data")
    database_url: str = ""  # empty -> SQLite file in data_dir (see resolved_database_url)
    models_dir: Path | None = None  # None -> data_dir / "models"
    default_provider: str = "sample"
    # Seeds the tracked tickers of a fresh database only (forecaster.universe); afterwards the
    # database says what the pipeline processes (`stockcast tickers add/remove/import`).
    tickers: tuple[str, ...] = SAMPLE_TICKERS

    # windows
    window: int = 7
    features: tuple[str, ...] = DEFAULT_FEATURES

    # model / training: the network's hyperparameters, passed whole (forecaster.params)
    model: ModelParams = field(default_factory=ModelParams)
    val_fraction: float = 0.15  # newest share of each fit's windows: early stopping

    # rolling-origin backtest and the serving rule (forecaster.backtest, forecaster.policy)
    backtest_days: int = 500  # forecasts in the backtest, where history allows
    backtest_refit_every: int = 125  # days per fold (one refit per fold)
    backtest_every_days: int = 21  # full backtest again after this many new days (0: nightly)
    # A quiet night fine-tunes the newest version's network for this many epochs on all days
    # instead of refitting from scratch (0: refit from scratch).
    warm_start_epochs: int = 3
    min_backtest_forecasts: int = 250  # fewer: too little evidence, a baseline serves
    skill_alpha: float = 0.05  # the network serves only if DM p-value < alpha vs best baseline
    interval_coverage: float = 0.9

    # yfinance
    yf_max_retries: int = 5
    yf_backoff_base: float = 1.0
    yf_backoff_cap: float = 60.0
    yf_auto_adjust: bool = False

    # pipeline: where each ticker's step runs (jobs.executors)
    # local: a pool of long-lived worker processes on this machine; celery: Celery workers
    # (`stockcast worker`, on any machine) through the broker; inline: in the run's own process
    executor: str = "local"
    workers: int = 0  # local pool size (0: the number of cores)
    worker_max_tasks: int = 20  # a worker process is replaced after this many tickers
    broker_url: str = "redis://127.0.0.1:6379/0"  # Celery broker and result backend
    celery_queue: str = "stockcast"
    step_timeout_seconds: int = 3600  # a ticker step running longer is killed and marked failed
    run_stale_seconds: int = 900  # a "running" run without a heartbeat this long is dead
    # Client-side deadline for connecting to the database and for each of its answers (and the
    # PostgreSQL statement_timeout): a frozen server gives errors, never hung requests.
    db_timeout_seconds: float = 2.0

    # scheduler
    schedule_cron: str = "30 18 * * mon-fri"
    schedule_timezone: str = "America/New_York"
    misfire_grace_seconds: int = 6 * 3600
    exchange_calendar: str = "XNYS"

    # api
    api_cache_max_age: int = 60
    api_response_ttl: float = 5.0  # seconds a worker reuses a rendered latest forecast (0: off)
    api_max_limit: int = 1000

    # logging
    log_level: str = "INFO"
    log_format: str = "json"  # json | text

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'stockcast.db').resolve()}"

    @property
    def resolved_models_dir(self) -> Path:
        return self.models_dir if self.models_dir is not None else self.data_dir / "models"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read STOCKCAST_* variables (and DATABASE_URL); anything unset keeps its default."""
        e = _Environment.read(os.environ if env is None else env)
        d = cls()
        dm = d.model

        def pick(value: Any, default: Any) -> Any:
            return default if value is None else value

        return cls(
            data_dir=Path(pick(e.STOCKCAST_DATA_DIR, d.data_dir)),
            database_url=pick(e.DATABASE_URL, d.database_url),
            models_dir=Path(e.STOCKCAST_MODELS_DIR) if e.STOCKCAST_MODELS_DIR else None,
            default_provider=pick(e.STOCKCAST_PROVIDER, d.default_provider),
            tickers=pick(e.STOCKCAST_TICKERS, d.tickers),
            window=pick(e.STOCKCAST_WINDOW, d.window),
            features=pick(e.STOCKCAST_FEATURES, d.features),
            model=ModelParams(
                units=pick(e.STOCKCAST_LSTM_UNITS, dm.units),
                epochs=pick(e.STOCKCAST_EPOCHS, dm.epochs),
                batch_size=pick(e.STOCKCAST_BATCH_SIZE, dm.batch_size),
                patience=pick(e.STOCKCAST_PATIENCE, dm.patience),
                learning_rate=pick(e.STOCKCAST_LEARNING_RATE, dm.learning_rate),
                seed=pick(e.STOCKCAST_SEED, dm.seed),
                highway=pick(e.STOCKCAST_HIGHWAY, dm.highway),
            ),
            val_fraction=pick(e.STOCKCAST_VAL_FRACTION, d.val_fraction),
            backtest_days=pick(e.STOCKCAST_BACKTEST_DAYS, d.backtest_days),
            backtest_refit_every=pick(e.STOCKCAST_BACKTEST_REFIT_EVERY, d.backtest_refit_every),
            backtest_every_days=pick(e.STOCKCAST_BACKTEST_EVERY_DAYS, d.backtest_every_days),
            warm_start_epochs=pick(e.STOCKCAST_WARM_START_EPOCHS, d.warm_start_epochs),
            min_backtest_forecasts=pick(
                e.STOCKCAST_MIN_BACKTEST_FORECASTS, d.min_backtest_forecasts
            ),
            skill_alpha=pick(e.STOCKCAST_SKILL_ALPHA, d.skill_alpha),
            interval_coverage=pick(e.STOCKCAST_INTERVAL_COVERAGE, d.interval_coverage),
            yf_max_retries=pick(e.STOCKCAST_YF_MAX_RETRIES, d.yf_max_retries),
            yf_backoff_base=pick(e.STOCKCAST_YF_BACKOFF_BASE, d.yf_backoff_base),
            yf_backoff_cap=pick(e.STOCKCAST_YF_BACKOFF_CAP, d.yf_backoff_cap),
            yf_auto_adjust=pick(e.STOCKCAST_YF_AUTO_ADJUST, d.yf_auto_adjust),
            # the variable it replaced is still read when the new one is unset
            executor=pick(e.STOCKCAST_EXECUTOR, pick(e.STOCKCAST_PIPELINE_ISOLATION, d.executor)),
            workers=pick(e.STOCKCAST_WORKERS, d.workers),
            worker_max_tasks=pick(e.STOCKCAST_WORKER_MAX_TASKS, d.worker_max_tasks),
            broker_url=pick(e.STOCKCAST_BROKER_URL, d.broker_url),
            celery_queue=pick(e.STOCKCAST_CELERY_QUEUE, d.celery_queue),
            step_timeout_seconds=pick(e.STOCKCAST_STEP_TIMEOUT_SECONDS, d.step_timeout_seconds),
            db_timeout_seconds=pick(e.STOCKCAST_DB_TIMEOUT_SECONDS, d.db_timeout_seconds),
            run_stale_seconds=pick(e.STOCKCAST_RUN_STALE_SECONDS, d.run_stale_seconds),
            schedule_cron=pick(e.STOCKCAST_SCHEDULE_CRON, d.schedule_cron),
            schedule_timezone=pick(e.STOCKCAST_SCHEDULE_TIMEZONE, d.schedule_timezone),
            misfire_grace_seconds=pick(e.STOCKCAST_MISFIRE_GRACE_SECONDS, d.misfire_grace_seconds),
            exchange_calendar=pick(e.STOCKCAST_EXCHANGE_CALENDAR, d.exchange_calendar),
            api_cache_max_age=pick(e.STOCKCAST_API_CACHE_MAX_AGE, d.api_cache_max_age),
            api_response_ttl=pick(e.STOCKCAST_API_RESPONSE_TTL, d.api_response_ttl),
            api_max_limit=pick(e.STOCKCAST_API_MAX_LIMIT, d.api_max_limit),
            log_level=pick(e.STOCKCAST_LOG_LEVEL, d.log_level),
            log_format=pick(e.STOCKCAST_LOG_FORMAT, d.log_format),
        )


# --- reading the environment -----------------------------------------------------------------

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
_INTEGER = re.compile(r"[+-]?[0-9]+")
# The variable STOCKCAST_EXECUTOR replaced: process (a child per step) or inline.
_LEGACY_ISOLATION = {"process": "local", "inline": "inline"}


def _shown(raw: str) -> str:
    """A bad value echoed in an error, bounded."""
    return repr(raw if len(raw) <= 24 else raw[:24] + "...")


def _fail(message: str) -> PydanticCustomError:
    # The message travels in the context: braces in an echoed value are not placeholders.
    return PydanticCustomError("bad_config", "{message}", {"message": message})


def _rule(parse: Callable[[str, str], Any]) -> BeforeValidator:
    """A field parsed by parse(variable name, stripped raw text)."""

    def run(raw: Any, info: ValidationInfo) -> Any:
        return parse(str(info.field_name), str(raw).strip())

    return BeforeValidator(run)


def _integer(minimum: int) -> BeforeValidator:
    def parse(name: str, raw: str) -> int:
        if not _INTEGER.fullmatch(raw):
            raise _fail(f"{name} must be an integer, got {_shown(raw)}")
        value = int(raw)
        if value < minimum:
            raise _fail(f"{name} must be >= {minimum}, got {value}")
        return value

    return _rule(parse)


def _number(ok: Callable[[float], bool], rule: str) -> BeforeValidator:
    """A finite number for which ok() holds; otherwise '<name> <rule>'."""

    def parse(name: str, raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise _fail(f"{name} must be a number, got {_shown(raw)}") from None
        if not math.isfinite(value) or not ok(value):
            raise _fail(f"{name} {rule}, got {_shown(raw)}")
        return value

    return _rule(parse)


def _boolean(name: str, raw: str) -> bool:
    value = raw.lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise _fail(f"{name} must be true or false, got {_shown(raw)}")


def _choice(
    choices: tuple[str, ...], normalize: Callable[[str], str] = str.lower
) -> BeforeValidator:
    def parse(name: str, raw: str) -> str:
        value = normalize(raw)
        if value not in choices:
            raise _fail(f"{name} must be one of {', '.join(choices)}, got {_shown(raw)}")
        return value

    return _rule(parse)


def _csv(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _units(name: str, raw: str) -> tuple[int, ...]:
    parts = _csv(raw)
    if not all(_INTEGER.fullmatch(p) for p in parts):
        raise _fail(f"{name} must be integers, got {_shown(raw)}")
    units = tuple(int(p) for p in parts)
    if len(units) < 2 or min(units) < 1:
        raise _fail(f"{name} needs at least two positive sizes (stacked LSTM)")
    return units


def _features(name: str, raw: str) -> tuple[str, ...]:
    features = _csv(raw)
    if set(features) - set(DEFAULT_FEATURES) or "close" not in features:
        raise _fail(f"{name} must be drawn from {DEFAULT_FEATURES} and include close")
    return features


def _tickers(name: str, raw: str) -> tuple[str, ...]:
    try:
        return tuple(normalize_ticker(t) for t in _csv(raw))
    except InvalidTicker as exc:
        raise _fail(f"{name}: {exc}") from None


def _broker(name: str, raw: str) -> str:
    if not raw.startswith(("redis://", "rediss://")):
        raise _fail(f"{name} must be a redis:// or rediss:// URL")
    return raw


def _isolation(name: str, raw: str) -> str:
    value = raw.lower()
    if value not in _LEGACY_ISOLATION:
        raise _fail(
            f"STOCKCAST_EXECUTOR must be one of {', '.join(EXECUTORS)} ({name}: {_shown(raw)})"
        )
    return _LEGACY_ISOLATION[value]


def _text(name: str, raw: str) -> str:
    return raw


Text = Annotated[str | None, _rule(_text)]
Boolean = Annotated[bool | None, _rule(_boolean)]


Count = Annotated[int | None, _integer(0)]
PositiveInt = Annotated[int | None, _integer(1)]
NonNegative = Annotated[float | None, _number(lambda v: v >= 0, "must be a number >= 0")]


class _Environment(BaseSettings):
    """One field per variable, named as the variable; None: unset or blank (Settings default)."""

    model_config = SettingsConfigDict(
        case_sensitive=True, extra="ignore", frozen=True, validate_default=False
    )

    STOCKCAST_DATA_DIR: Text = None
    DATABASE_URL: Text = None
    STOCKCAST_MODELS_DIR: Text = None
    STOCKCAST_PROVIDER: Annotated[str | None, _choice(PROVIDERS)] = None
    STOCKCAST_TICKERS: Annotated[tuple[str, ...] | None, NoDecode, _rule(_tickers)] = None
    STOCKCAST_WINDOW: Annotated[int | None, _integer(2)] = None
    STOCKCAST_FEATURES: Annotated[tuple[str, ...] | None, NoDecode, _rule(_features)] = None
    STOCKCAST_LSTM_UNITS: Annotated[tuple[int, ...] | None, NoDecode, _rule(_units)] = None
    STOCKCAST_EPOCHS: PositiveInt = None
    STOCKCAST_BATCH_SIZE: PositiveInt = None
    STOCKCAST_PATIENCE: PositiveInt = None
    STOCKCAST_LEARNING_RATE: Annotated[
        float | None, _number(lambda v: v > 0, "must be positive")
    ] = None
    STOCKCAST_SEED: Count = None
    STOCKCAST_HIGHWAY: Annotated[str | None, _choice(HIGHWAYS)] = None
    STOCKCAST_VAL_FRACTION: Annotated[
        float | None, _number(lambda v: 0 < v < 0.5, "must be between 0 and 0.5")
    ] = None
    STOCKCAST_BACKTEST_DAYS: Annotated[int | None, _integer(10)] = None
    STOCKCAST_BACKTEST_REFIT_EVERY: PositiveInt = None
    STOCKCAST_BACKTEST_EVERY_DAYS: Count = None
    STOCKCAST_WARM_START_EPOCHS: Count = None
    STOCKCAST_MIN_BACKTEST_FORECASTS: Count = None
    STOCKCAST_SKILL_ALPHA: Annotated[
        float | None, _number(lambda v: 0 < v <= 1, "must be in (0, 1]")
    ] = None
    STOCKCAST_INTERVAL_COVERAGE: Annotated[
        float | None, _number(lambda v: 0 < v < 1, "must be between 0 and 1")
    ] = None
    STOCKCAST_YF_MAX_RETRIES: Count = None
    STOCKCAST_YF_BACKOFF_BASE: NonNegative = None
    STOCKCAST_YF_BACKOFF_CAP: NonNegative = None
    STOCKCAST_YF_AUTO_ADJUST: Boolean = None
    STOCKCAST_EXECUTOR: Annotated[str | None, _choice(EXECUTORS)] = None
    STOCKCAST_PIPELINE_ISOLATION: Annotated[str | None, _rule(_isolation)] = None
    STOCKCAST_WORKERS: Count = None
    STOCKCAST_WORKER_MAX_TASKS: PositiveInt = None
    STOCKCAST_BROKER_URL: Annotated[str | None, _rule(_broker)] = None
    STOCKCAST_CELERY_QUEUE: Text = None
    STOCKCAST_STEP_TIMEOUT_SECONDS: PositiveInt = None
    STOCKCAST_DB_TIMEOUT_SECONDS: Annotated[
        float | None, _number(lambda v: 1 <= v <= 3600, "must be between 1 and 3600")
    ] = None
    STOCKCAST_RUN_STALE_SECONDS: Annotated[int | None, _integer(60)] = None
    STOCKCAST_SCHEDULE_CRON: Text = None
    STOCKCAST_SCHEDULE_TIMEZONE: Text = None
    STOCKCAST_MISFIRE_GRACE_SECONDS: PositiveInt = None
    STOCKCAST_EXCHANGE_CALENDAR: Text = None
    STOCKCAST_API_CACHE_MAX_AGE: Count = None
    STOCKCAST_API_RESPONSE_TTL: NonNegative = None
    STOCKCAST_API_MAX_LIMIT: PositiveInt = None
    STOCKCAST_LOG_LEVEL: Annotated[str | None, _choice(LOG_LEVELS, str.upper)] = None
    STOCKCAST_LOG_FORMAT: Annotated[str | None, _choice(LOG_FORMATS)] = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Only what read() passes in: never a .env file or a secrets folder behind our back.
        return (init_settings,)

    @classmethod
    def read(cls, env: Mapping[str, str]) -> _Environment:
        """The variables of `env` (os.environ or a test's dict) through pydantic-settings'
        environment source; blank values count as unset."""
        source = EnvSettingsSource(cls, case_sensitive=True, env_ignore_empty=True)
        # The source's variables are `env`'s, not necessarily the process's own.
        source.env_vars = {k: v for k, v in env.items() if k in cls.model_fields and v.strip()}
        try:
            return cls(**source())
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            name = ".".join(str(part) for part in first["loc"]) or "configuration"
            message = first["msg"] if first["type"] == "bad_config" else f"{name} is invalid"
            raise ConfigError(message) from None
