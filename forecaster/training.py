"""Train one model version: measure it with a rolling-origin backtest, then refit it on every day.

1. Skill: `forecaster.backtest.run_backtest` refits at regular origins over the last
   `backtest_days` and forecasts one step ahead from each (baselines, DM tests, coverage).
2. What is served: the network refit on all windows up to the last stored day, for the number of
   epochs early stopping chose in the backtest's most recent fold (the fit closest in size and
   time to this one). Its statistics are fit on all rows, as a nightly model's would be.
   `trained_through` is the last day whose close those weights were fit on.
3. The serving method (network or best baseline) follows `forecaster.policy` from the backtest.

A quiet night (same configuration, the same history up to the last backtest's end, and at most
`backtest_every_days` new days since) reuses that backtest and only does step 2, warm-started:
the newest version's network is fine-tuned for `warm_start_epochs` epochs on every window (its
feature statistics kept: they were fit on a subset of today's training days), instead of a fit
from scratch. So the network is refit from scratch (with a full backtest) every
`backtest_every_days` new days, when the configuration changes, when history before the
backtest's end was revised, or when the newest artifact cannot be loaded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pandas as pd

from forecaster import artifacts, backtest_record
from forecaster.backtest import (
    BacktestConfig,
    history_fingerprint,
    median_log_return,
    run_backtest,
)
from forecaster.evaluation import ewma_volatility
from forecaster.model import ForecastBundle, LSTMForecaster
from forecaster.policy import METHODS, Choice, choose_method
from forecaster.settings import Settings
from forecaster.validation import check_daily
from forecaster.windows import check_history, fit_stats, make_windows

log = logging.getLogger(__name__)


@dataclass
class TrainingOutcome:
    bundle: ForecastBundle
    config: dict[str, Any]
    backtest: dict[str, Any]  # forecaster.backtest summary (JSON-ready)
    backtest_reused: bool  # True: a quiet night, the previous version's backtest still holds
    choice: Choice
    train_start: date  # first target date of the served fit
    trained_through: date  # last day whose close the served weights were fit on
    n_train: int  # windows in the served fit
    final_epochs: int
    final_fit_seconds: float
    train_seconds: float  # every fit of this training (backtest folds + served fit)
    fit_epochs: int  # epochs of the served fit (a warm start's fine-tune epochs)
    warm_from: int | None  # the version whose network a quiet night fine-tuned, or None
    median_log_return: float  # the median_return baseline's constant, fit on all days
    last_sigma: float  # EWMA volatility on the last stored day
    # fingerprint of every stored day it was trained on: any change forces a full backtest
    history: dict[str, Any] = field(default_factory=dict)
    # a full backtest's forecasts (forecaster.backtest_record); None: a quiet night reused one
    record: dict[str, Any] | None = None

    @property
    def samples_per_second(self) -> float:
        if not self.final_fit_seconds:
            return 0.0
        return self.n_train * self.fit_epochs / self.final_fit_seconds

    @property
    def serving(self) -> dict[str, Any]:
        """What predict needs to serve any method, stored with the version."""
        return {
            "method": self.choice.method,
            "reason": self.choice.reason,
            "median_log_return": self.median_log_return,
            "interval_scales": self.backtest["interval_scales"],
            "final_epochs": self.final_epochs,
            "final_fit_seconds": round(self.final_fit_seconds, 3),
            "backtest_reused": self.backtest_reused,
            "warm_started_from": self.warm_from,
            "history": self.history,
        }


def training_config(settings: Settings) -> dict[str, Any]:
    """Everything that changes what training produces: a change forces a full backtest."""
    scope = (
        {"scope": "universe", "ensemble": settings.ensemble}
        if settings.model_scope == "universe"
        else {}  # ticker scope: the same configuration as before scopes existed
    )
    return {
        **scope,
        "window": settings.window,
        "features": list(settings.features),
        "model": settings.model.to_dict(),
        "val_fraction": settings.val_fraction,
        "backtest_days": settings.backtest_days,
        "backtest_refit_every": settings.backtest_refit_every,
        "interval_coverage": settings.interval_coverage,
        "target": "next-day log return",
    }


# Beside training_config: the settings that decide what a step evaluates, serves and stores.
SERVING_FIELDS: tuple[str, ...] = (
    "backtest_every_days",
    "warm_start_epochs",
    "min_backtest_forecasts",
    "skill_alpha",
    "yf_auto_adjust",
    "exchange_calendar",
    "schedule_timezone",
    "model_scope",
    "ensemble",
)


def run_config(settings: Settings) -> dict[str, Any]:
    """Every setting that decides which model a step trains and serves, and the release that
    trains it, as plain JSON data: training_config plus SERVING_FIELDS. A run ships it with each
    step (jobs.executors.base.StepTask); a worker whose own settings give another one refuses the
    step instead of training another model."""
    serving = {name: getattr(settings, name) for name in SERVING_FIELDS}
    return {**training_config(settings), **serving, "code_version": code_version()}


def code_version() -> str:
    """The installed stockcast release (workers of another release train another model)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("stockcast")
    except PackageNotFoundError:  # run from a source tree without installing
        return "unknown"


def config_hash(config: Mapping[str, Any]) -> str:
    """A short, stable digest of a configuration (canonical JSON)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def backtest_config(settings: Settings) -> BacktestConfig:
    return BacktestConfig(
        days=settings.backtest_days,
        refit_every=settings.backtest_refit_every,
        val_fraction=settings.val_fraction,
        coverage=settings.interval_coverage,
    )


def reusable_backtest(
    previous: dict[str, Any] | None, config: dict[str, Any], prices: pd.DataFrame, every: int
) -> dict[str, Any] | None:
    """The previous version's backtest and serving record, if a quiet night may reuse them."""
    if previous is None or every <= 0 or previous.get("config") != config:
        return None
    backtest, serving = previous.get("backtest"), previous.get("serving")
    if not backtest or not serving or "final_epochs" not in serving or "history" not in backtest:
        return None
    # Every stored day the previous version saw must be unchanged: its backtest's span and,
    # where recorded, the whole history it was trained on (a corrected row anywhere, a split).
    for seen in (backtest["history"], serving.get("history")):
        if seen and history_fingerprint(prices, date.fromisoformat(seen["through"])) != seen:
            return None
    new_days = int((prices.index > pd.Timestamp(backtest["end"])).sum())
    return previous if new_days <= every else None


def fit_all(
    prices: pd.DataFrame, settings: Settings, epochs: int
) -> tuple[LSTMForecaster, Any, Any]:
    """The served network: every window up to the last stored day, a fixed number of epochs."""
    stats = fit_stats(prices, settings.window, settings.features, prices.index[-1].date())
    ws = make_windows(prices, stats)
    least = 0 if settings.model.highway != "none" else 1  # 0 epochs: the ridge highway alone
    params = settings.model.replace(epochs=max(least, epochs))
    model = LSTMForecaster(params).fit(ws.X, ws.y, feature_names=stats.features)
    return model, stats, ws


def warm_start(
    previous: dict[str, Any], prices: pd.DataFrame, settings: Settings
) -> tuple[LSTMForecaster, Any, Any] | None:
    """The newest version's network fine-tuned on every window, or None to refit from scratch."""
    from forecaster.errors import ModelArtifactError

    artifact = previous.get("artifact")
    if artifact is None or settings.warm_start_epochs <= 0:
        return None
    try:
        bundle = artifacts.unpack(artifact, f"the artifact of v{previous.get('version')}")
    except ModelArtifactError as exc:
        log.warning("warm start impossible: refit from scratch", extra={"error": str(exc)})
        return None
    stats = bundle.stats
    if stats.window != settings.window or tuple(stats.features) != tuple(settings.features):
        return None
    ws = make_windows(prices, stats)
    model = bundle.model.fine_tune(ws.X, ws.y, settings.warm_start_epochs)
    return model, stats, ws


def train(
    prices: pd.DataFrame,
    settings: Settings,
    ticker: str = "",
    previous: dict[str, Any] | None = None,
) -> TrainingOutcome:
    """Backtest (unless a quiet night may reuse `previous`), refit on all days, choose the method.

    `previous` is the newest version's {"config", "backtest", "serving"} record, or None.
    """
    started = time.perf_counter()
    check_history(prices, settings.window, ticker)
    check_daily(prices, ticker)
    config = training_config(settings)
    reused = reusable_backtest(previous, config, prices, settings.backtest_every_days)
    backtest_seconds = 0.0
    warm = None
    record = None
    if reused is not None:
        summary = reused["backtest"]
        final_epochs = int(reused["serving"]["final_epochs"])
        # The backtest kept the ridge highway alone (0 epochs): refitting that costs less than
        # a fine-tune, and a fine-tune would train the LSTM the backtest chose not to use.
        warm = warm_start(reused, prices, settings) if final_epochs > 0 else None
    else:
        result = run_backtest(
            prices,
            settings.window,
            settings.features,
            settings.model,
            backtest_config(settings),
            ticker,
        )
        summary = result.summary
        record = backtest_record.from_backtest(result, METHODS)
        backtest_seconds = result.fit_seconds
        final_epochs = result.best_epochs[-1]
    model, stats, ws = warm if warm is not None else fit_all(prices, settings, final_epochs)
    choice = choose_method(summary, settings.min_backtest_forecasts, settings.skill_alpha)
    trained_through = ws.target_dates[-1].date()
    close = prices["close"].to_numpy(dtype="float64")
    sigma_last = float(ewma_volatility(close)[-1])
    bundle = ForecastBundle(
        model=model,
        stats=stats,
        # the network's interval at the last stored day; predict rescales it by that day's volatility
        interval_halfwidth=float(summary["interval_scales"]["model"] * sigma_last),
        coverage=settings.interval_coverage,
        config=config,
        metadata={
            "ticker": ticker,
            "data_start": str(prices.index[0].date()),
            "data_end": str(prices.index[-1].date()),
            "trained_through": trained_through.isoformat(),
        },
    )
    outcome = TrainingOutcome(
        bundle=bundle,
        config=config,
        backtest=summary,
        backtest_reused=reused is not None,
        choice=choice,
        train_start=ws.target_dates[0].date(),
        trained_through=trained_through,
        n_train=len(ws),
        final_epochs=final_epochs,  # the backtest's choice: a cold refit's epoch count
        final_fit_seconds=model.train_seconds_,
        train_seconds=backtest_seconds + model.train_seconds_,
        fit_epochs=model.epochs_run_,
        warm_from=int(reused["version"]) if warm is not None and reused is not None else None,
        median_log_return=median_log_return(close),
        last_sigma=sigma_last,
        history=history_fingerprint(prices, prices.index[-1].date()),
        record=record,
    )
    log.info(
        "model trained",
        extra={
            "ticker": ticker,
            "n_train": len(ws),
            "epochs": model.epochs_run_,
            "backtest_reused": reused is not None,
            "warm_from": outcome.warm_from,
            "fit_seconds": round(outcome.train_seconds, 2),
            "total_seconds": round(time.perf_counter() - started, 2),
            "mae_ratio": summary.get("mae_ratio"),
            "method": choice.method,
        },
    )
    return outcome
