"""Configuration: one frozen Settings object, read from the environment in exactly one place."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from forecaster.errors import ConfigError
from forecaster.params import ModelParams

DEFAULT_FEATURES: tuple[str, ...] = ("open", "high", "low", "volume", "close")
SAMPLE_TICKERS: tuple[str, ...] = ("^GSPC", "GOOG")


def _int(env: Mapping[str, str], key: str, default: int, minimum: int = 0) -> int:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(f"{key} must be an integer, got {raw!r}") from exc
    if value < minimum:
        raise ConfigError(f"{key} must be >= {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], key: str, default: float) -> float:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigError(f"{key} must be a number, got {raw!r}") from exc


def _db_timeout(env: Mapping[str, str], default: float) -> float:
    value = _float(env, "STOCKCAST_DB_TIMEOUT_SECONDS", default)
    if not 1.0 <= value <= 3600.0:  # NaN fails this too
        raise ConfigError(f"STOCKCAST_DB_TIMEOUT_SECONDS must be between 1 and 3600, got {value:g}")
    return value


EXECUTORS = ("local", "celery", "inline")


def _executor(env: Mapping[str, str], default: str) -> str:
    raw = env.get("STOCKCAST_EXECUTOR", "").strip().lower()
    if not raw:  # the variable this one replaced: process (a child per step) or inline
        legacy = env.get("STOCKCAST_PIPELINE_ISOLATION", "").strip().lower()
        raw = {"": default, "process": "local", "inline": "inline"}.get(legacy, legacy)
    if raw not in EXECUTORS:
        raise ConfigError(f"STOCKCAST_EXECUTOR must be one of {', '.join(EXECUTORS)}")
    return raw


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _bool(env: Mapping[str, str], key: str, default: bool) -> bool:
    raw = env.get(key)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{key} must be true or false, got {raw[:24]!r}")


def _csv(env: Mapping[str, str], key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = env.get(key)
    if raw is None or raw.strip() == "":
        return default
    return tuple(part.strip() for part in raw.split(",") if part.strip())


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
        env = os.environ if env is None else env
        d = cls()
        dm = d.model
        units = _csv(env, "STOCKCAST_LSTM_UNITS", tuple(str(u) for u in dm.units))
        try:
            lstm_units = tuple(int(u) for u in units)
        except ValueError as exc:
            raise ConfigError(f"STOCKCAST_LSTM_UNITS must be integers, got {units!r}") from exc
        if len(lstm_units) < 2 or min(lstm_units) < 1:
            raise ConfigError(
                "STOCKCAST_LSTM_UNITS needs at least two positive sizes (stacked LSTM)"
            )
        features = _csv(env, "STOCKCAST_FEATURES", d.features)
        unknown = set(features) - set(DEFAULT_FEATURES)
        if unknown or "close" not in features:
            raise ConfigError(
                f"STOCKCAST_FEATURES must be drawn from {DEFAULT_FEATURES} and include close"
            )
        log_level = env.get("STOCKCAST_LOG_LEVEL", d.log_level).strip().upper()
        if log_level not in LOG_LEVELS:
            raise ConfigError(f"STOCKCAST_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}")
        log_format = env.get("STOCKCAST_LOG_FORMAT", d.log_format).lower()
        if log_format not in ("json", "text"):
            raise ConfigError("STOCKCAST_LOG_FORMAT must be json or text")
        models_dir = env.get("STOCKCAST_MODELS_DIR")
        val_fraction = _float(env, "STOCKCAST_VAL_FRACTION", d.val_fraction)
        if not 0 < val_fraction < 0.5:
            raise ConfigError("STOCKCAST_VAL_FRACTION must be between 0 and 0.5")
        alpha = _float(env, "STOCKCAST_SKILL_ALPHA", d.skill_alpha)
        if not 0 < alpha <= 1:
            raise ConfigError("STOCKCAST_SKILL_ALPHA must be in (0, 1]")
        learning_rate = _float(env, "STOCKCAST_LEARNING_RATE", dm.learning_rate)
        if not learning_rate > 0:
            raise ConfigError("STOCKCAST_LEARNING_RATE must be positive")
        coverage = _float(env, "STOCKCAST_INTERVAL_COVERAGE", d.interval_coverage)
        if not 0 < coverage < 1:
            raise ConfigError("STOCKCAST_INTERVAL_COVERAGE must be between 0 and 1")
        executor = _executor(env, d.executor)
        broker_url = env.get("STOCKCAST_BROKER_URL", "").strip() or d.broker_url
        if not broker_url.startswith(("redis://", "rediss://")):
            raise ConfigError("STOCKCAST_BROKER_URL must be a redis:// or rediss:// URL")
        return cls(
            data_dir=Path(env.get("STOCKCAST_DATA_DIR", str(d.data_dir))),
            database_url=env.get("DATABASE_URL", d.database_url),
            models_dir=Path(models_dir) if models_dir else None,
            default_provider=env.get("STOCKCAST_PROVIDER", d.default_provider),
            tickers=tuple(t.upper() for t in _csv(env, "STOCKCAST_TICKERS", d.tickers)),
            window=_int(env, "STOCKCAST_WINDOW", d.window, minimum=2),
            features=features,
            model=ModelParams(
                units=lstm_units,
                epochs=_int(env, "STOCKCAST_EPOCHS", dm.epochs, minimum=1),
                batch_size=_int(env, "STOCKCAST_BATCH_SIZE", dm.batch_size, minimum=1),
                patience=_int(env, "STOCKCAST_PATIENCE", dm.patience, minimum=1),
                learning_rate=learning_rate,
                seed=_int(env, "STOCKCAST_SEED", dm.seed),
            ),
            val_fraction=val_fraction,
            backtest_days=_int(env, "STOCKCAST_BACKTEST_DAYS", d.backtest_days, minimum=10),
            backtest_refit_every=_int(
                env, "STOCKCAST_BACKTEST_REFIT_EVERY", d.backtest_refit_every, minimum=1
            ),
            backtest_every_days=_int(env, "STOCKCAST_BACKTEST_EVERY_DAYS", d.backtest_every_days),
            warm_start_epochs=_int(env, "STOCKCAST_WARM_START_EPOCHS", d.warm_start_epochs),
            min_backtest_forecasts=_int(
                env, "STOCKCAST_MIN_BACKTEST_FORECASTS", d.min_backtest_forecasts
            ),
            skill_alpha=alpha,
            interval_coverage=coverage,
            yf_max_retries=_int(env, "STOCKCAST_YF_MAX_RETRIES", d.yf_max_retries),
            yf_backoff_base=_float(env, "STOCKCAST_YF_BACKOFF_BASE", d.yf_backoff_base),
            yf_backoff_cap=_float(env, "STOCKCAST_YF_BACKOFF_CAP", d.yf_backoff_cap),
            yf_auto_adjust=_bool(env, "STOCKCAST_YF_AUTO_ADJUST", d.yf_auto_adjust),
            executor=executor,
            workers=_int(env, "STOCKCAST_WORKERS", d.workers),
            worker_max_tasks=_int(env, "STOCKCAST_WORKER_MAX_TASKS", d.worker_max_tasks, minimum=1),
            broker_url=broker_url,
            celery_queue=env.get("STOCKCAST_CELERY_QUEUE", "").strip() or d.celery_queue,
            step_timeout_seconds=_int(
                env, "STOCKCAST_STEP_TIMEOUT_SECONDS", d.step_timeout_seconds, minimum=1
            ),
            db_timeout_seconds=_db_timeout(env, d.db_timeout_seconds),
            run_stale_seconds=_int(
                env, "STOCKCAST_RUN_STALE_SECONDS", d.run_stale_seconds, minimum=60
            ),
            schedule_cron=env.get("STOCKCAST_SCHEDULE_CRON", d.schedule_cron),
            schedule_timezone=env.get("STOCKCAST_SCHEDULE_TIMEZONE", d.schedule_timezone),
            misfire_grace_seconds=_int(
                env, "STOCKCAST_MISFIRE_GRACE_SECONDS", d.misfire_grace_seconds, minimum=1
            ),
            exchange_calendar=env.get("STOCKCAST_EXCHANGE_CALENDAR", d.exchange_calendar),
            api_cache_max_age=_int(env, "STOCKCAST_API_CACHE_MAX_AGE", d.api_cache_max_age),
            api_response_ttl=_float(env, "STOCKCAST_API_RESPONSE_TTL", d.api_response_ttl),
            api_max_limit=_int(env, "STOCKCAST_API_MAX_LIMIT", d.api_max_limit, minimum=1),
            log_level=log_level,
            log_format=log_format,
        )
