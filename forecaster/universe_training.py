"""Train every ticker's model version at once in universe scope (STOCKCAST_MODEL_SCOPE=universe).

1. Skill: `forecaster.universe_backtest.run_universe_backtest`: one pooled fit per common fold
   origin, every ticker's own 500 forecasts, baselines and DM tests.
2. What is served: the universe network(s) refit on every ticker's windows up to its last stored
   day, for the epochs early stopping chose in the newest fold; each ticker's highway and
   centring on all its windows.
3. Each ticker's serving method follows `forecaster.policy` from its own backtest, as in ticker
   scope.

Each ticker gets a TrainingOutcome like forecaster.training.train's: its network is one Keras
model (the ensemble's mean plus its highway, forecaster.pooled.UniverseForecaster.ticker_network),
so the registry, the artifact and the prediction code serve it unchanged.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from forecaster import artifacts, backtest_record
from forecaster.backtest import history_fingerprint, median_log_return
from forecaster.errors import InsufficientHistory, StockcastError
from forecaster.evaluation import ewma_volatility
from forecaster.model import ForecastBundle, LSTMForecaster
from forecaster.policy import METHODS, choose_method
from forecaster.settings import Settings
from forecaster.training import (
    TrainingOutcome,
    backtest_config,
    reusable_backtest,
    training_config,
)
from forecaster.universe_backtest import fit_served, participants, run_universe_backtest
from forecaster.validation import check_daily
from forecaster.windows import MIN_TRAIN, MIN_VAL, check_history

log = logging.getLogger(__name__)


@dataclass
class UniverseTraining:
    outcomes: dict[str, TrainingOutcome]
    failed: dict[str, StockcastError] = field(default_factory=dict)  # ticker -> why not trained
    info: dict[str, Any] = field(default_factory=dict)  # what users see about the universe model
    seconds: float = 0.0


def quiet_night(
    usable: Mapping[str, pd.DataFrame],
    settings: Settings,
    previous: Mapping[str, dict[str, Any] | None],
) -> dict[str, dict[str, Any]] | None:
    """Every ticker's previous record when a quiet night may reuse the universe backtest: each
    ticker was in it, with the same configuration and unrevised history, at most
    `backtest_every_days` days ago. A new or revised ticker (or any change) means a full
    backtest for the universe, so its figures are honest and out of sample."""
    if settings.warm_start_epochs <= 0:
        return None
    config = training_config(settings)
    reused: dict[str, dict[str, Any]] = {}
    for symbol, prices in usable.items():
        record = reusable_backtest(
            previous.get(symbol), config, prices, settings.backtest_every_days
        )
        if record is None or "universe" not in record["backtest"]:
            return None
        reused[symbol] = record
    fits = {r["backtest"]["universe"].get("fit_id") for r in reused.values()}
    return reused if len(fits) == 1 and None not in fits else None  # all from one universe fit


def train_universe(
    universe: Mapping[str, pd.DataFrame],
    settings: Settings,
    previous: Mapping[str, dict[str, Any] | None] | None = None,
) -> UniverseTraining:
    """Backtest the universe on common fold origins (or, on a quiet night, reuse that backtest and
    fine-tune the previous networks), refit on all days, choose each ticker's method.

    `previous` maps a ticker to its newest version's record (forecaster.service.previous_training).
    """
    started = time.perf_counter()
    failed: dict[str, StockcastError] = {}
    usable: dict[str, pd.DataFrame] = {}
    for symbol in sorted(universe):
        try:
            check_history(universe[symbol], settings.window, symbol)
            check_daily(universe[symbol], symbol)
        except StockcastError as exc:
            failed[symbol] = exc
            continue
        usable[symbol] = universe[symbol]
    if not usable:
        return UniverseTraining({}, failed, {}, time.perf_counter() - started)
    # A ticker the universe backtest cannot judge (its history ends before the backtest's
    # span: stale or delisted data) is trained on its own, as in ticker scope, so it is still
    # forecast with an honest backtest of its own days.
    pooled = participants(usable, settings.window, backtest_config(settings))
    own = {s: p for s, p in usable.items() if s not in pooled}
    usable = {s: p for s, p in usable.items() if s in pooled}
    own_outcomes = _train_own(own, settings, previous or {}, failed)
    if not usable:
        return UniverseTraining(own_outcomes, failed, {}, time.perf_counter() - started)
    params, members = settings.model, settings.ensemble
    reused = quiet_night(usable, settings, previous or {})
    warm = _warm_start(reused, usable, settings) if reused is not None else None
    if reused is not None and warm is not None:
        served, stats = warm
        first = next(iter(reused.values()))
        summaries = {s: {**r["backtest"]} for s, r in reused.items()}
        epochs = int(first["serving"]["final_epochs"])
        fold_info = {
            k: first["backtest"]["universe"].get(k)
            for k in ("backtest_origins", "backtest_best_epochs")
        }
        backtest_seconds, skipped = 0.0, {}
        warm_from = {s: int(r["version"]) for s, r in reused.items()}
        records: dict[str, dict[str, Any]] = {}  # the reused backtests keep their records
    else:
        bt = run_universe_backtest(
            usable, settings.window, settings.features, params, backtest_config(settings), members
        )
        epochs = bt.best_epochs[-1] if bt.best_epochs else 0  # the newest fold's choice
        served, stats = fit_served(
            usable, settings.window, settings.features, params, members, epochs
        )
        summaries = {s: r.summary for s, r in bt.results.items()}
        records = {s: backtest_record.from_backtest(r, METHODS) for s, r in bt.results.items()}
        fold_info = {
            "backtest_origins": [f.origin.isoformat() for f in bt.folds],
            "backtest_best_epochs": bt.best_epochs,
        }
        backtest_seconds, skipped, warm_from = bt.fit_seconds, bt.skipped, {}
    through = max(prices.index[-1].date() for prices in usable.values())
    info = {
        "scope": "universe",
        "fit_id": uuid.uuid4().hex[:12],  # the fit every ticker's version of this night shares
        "tickers": served.n_tickers_,
        "windows": served.n_windows_,
        "members": members,
        "epochs": epochs,
        "trained_through": through.isoformat(),
        **fold_info,
        "warm_start": bool(warm_from),
        "fit_seconds": round(backtest_seconds + served.train_seconds_, 3),
    }
    config = training_config(settings)
    share = (backtest_seconds + served.train_seconds_) / max(1, served.n_tickers_)
    shared = artifacts.pack_shared(served.shared_network())  # once: every ticker serves it
    outcomes: dict[str, TrainingOutcome] = {}
    for symbol, prices in usable.items():
        if symbol not in summaries or symbol not in stats:
            continue
        summary = {**summaries[symbol], "universe": info}
        close = prices["close"].to_numpy(dtype="float64")
        sigma_last = float(ewma_volatility(close)[-1])
        network = LSTMForecaster.from_keras(served.ticker_network(symbol), params.to_dict())
        trained_through = prices.index[-1].date()
        bundle = ForecastBundle(
            model=network,
            stats=stats[symbol],
            interval_halfwidth=float(summary["interval_scales"]["model"] * sigma_last),
            coverage=settings.interval_coverage,
            config=config,
            metadata={
                "ticker": symbol,
                "scope": "universe",
                "data_start": str(prices.index[0].date()),
                "data_end": str(trained_through),
                "trained_through": trained_through.isoformat(),
            },
            shared=shared,
        )
        outcomes[symbol] = TrainingOutcome(
            bundle=bundle,
            config=config,
            backtest=summary,
            backtest_reused=symbol in warm_from,
            choice=choose_method(summary, settings.min_backtest_forecasts, settings.skill_alpha),
            train_start=prices.index[settings.window].date(),
            trained_through=trained_through,
            n_train=len(prices) - settings.window,
            final_epochs=epochs,
            final_fit_seconds=served.train_seconds_ / max(1, served.n_tickers_),
            train_seconds=share,
            fit_epochs=(settings.warm_start_epochs if epochs > 0 else 0)
            if symbol in warm_from
            else epochs,
            warm_from=warm_from.get(symbol),
            median_log_return=median_log_return(close),
            last_sigma=sigma_last,
            history=history_fingerprint(prices, trained_through),
            record=records.get(symbol),
        )
    for symbol in skipped:  # no fold had enough of its windows before its origin
        need = settings.window + MIN_TRAIN + MIN_VAL + settings.backtest_refit_every
        failed.setdefault(symbol, InsufficientHistory(symbol, len(usable[symbol]), need))
    outcomes.update(own_outcomes)
    seconds = time.perf_counter() - started
    log.info("universe trained", extra={**info, "seconds": round(seconds, 2)})
    return UniverseTraining(outcomes, failed, info, seconds)


def _train_own(
    own: Mapping[str, pd.DataFrame],
    settings: Settings,
    previous: Mapping[str, dict[str, Any] | None],
    failed: dict[str, StockcastError],
) -> dict[str, TrainingOutcome]:
    """Tickers outside the universe backtest, each with its own network (forecaster.training)."""
    from forecaster.training import train

    outcomes = {}
    for symbol, prices in own.items():
        record = previous.get(symbol)
        if record is not None and "universe" in (record.get("backtest") or {}):
            record = None  # its previous network was the universe's: a backtest of its own
        try:
            outcomes[symbol] = train(prices, settings, symbol, record)
        except StockcastError as exc:
            failed[symbol] = exc
        except Exception as exc:  # one ticker's bug must not stop the universe
            log.exception("training on its own failed", extra={"ticker": symbol})
            failed[symbol] = StockcastError(f"{symbol}: {type(exc).__name__}: {exc}")
    if own:
        log.info("trained outside the universe", extra={"tickers": sorted(own)})
    return outcomes


def _warm_start(
    reused: Mapping[str, dict[str, Any]], usable: Mapping[str, pd.DataFrame], settings: Settings
) -> tuple[Any, dict[str, Any]] | None:
    """The previous universe networks fine-tuned on every ticker's windows for
    `warm_start_epochs` epochs at a tenth of the learning rate (as a ticker-scope warm start),
    each ticker's highway and centring refit on all its windows; None to refit from scratch."""
    from forecaster.errors import ModelArtifactError
    from forecaster.model import FINE_TUNE_LR_FACTOR
    from forecaster.pooled import member_weights_of

    artifact = next((r["artifact"] for r in reused.values() if r.get("artifact")), None)
    try:
        start = member_weights_of(artifacts.unpack(artifact).model.model_) if artifact else None
    except (ModelArtifactError, ValueError) as exc:
        log.warning("universe warm start impossible: refit from scratch", extra={"error": str(exc)})
        return None
    if start is None or len(start) != settings.ensemble:
        return None
    # The backtest kept the highways alone (0 epochs): the networks stay as they are (their
    # head at zero), as a ticker-scope quiet night skips its fine-tune then.
    tuned = int(next(iter(reused.values()))["serving"]["final_epochs"]) > 0
    return fit_served(
        usable,
        settings.window,
        settings.features,
        settings.model,
        settings.ensemble,
        settings.warm_start_epochs if tuned else 0,
        start=start,
        lr_factor=FINE_TUNE_LR_FACTOR,
    )
