"""Use cases: backfill (forecaster.ingest), train, evaluate and register a ticker's model, predict
(forecaster.predict), and what they share with the per-ticker refresh that chains them
(forecaster.refresh). Callers own the session and its transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pandas as pd
from sqlalchemy.orm import Session

from forecaster import artifacts, storage
from forecaster.errors import InvalidDateRange
from forecaster.ingest import backfill_ticker as backfill_ticker
from forecaster.predict import predict_ticker as predict_ticker
from forecaster.predict import require_ticker as require_ticker
from forecaster.settings import Settings

log = logging.getLogger(__name__)


def training_note(result: TrainResult, trained: Any) -> str:
    """One line: what was trained, how it was measured and what serves."""
    v = result.model_version
    bt = trained.backtest
    how = (
        f"quiet night: the backtest to {bt['end']} still holds ({bt['n_forecasts']} forecasts)"
        if trained.backtest_reused
        else f"{bt['folds']}-fold rolling-origin backtest, {bt['n_forecasts']} forecasts"
    )
    if trained.warm_from is not None:
        how += f", v{trained.warm_from} fine-tuned {trained.fit_epochs} epoch(s)"
    verdict = f"serves {v.method}" if result.promoted else f"rejected ({result.reason})"
    ratio = bt.get("mae_ratio")
    shown = "n/a" if ratio is None else f"{ratio:.4f}"
    p = bt.get("dm_best_pvalue")
    return (
        f"trained v{v.version} through {v.trained_through} in {result.train_seconds:.1f}s "
        f"({how}): MAE ratio {shown} vs persistence, best baseline {bt['best_baseline']}, "
        f"DM p={'n/a' if p is None else f'{p:.3g}'} -> {verdict}"
    )


@dataclass
class TrainResult:
    model_version: storage.ModelVersion
    promoted: bool
    reason: str | None
    train_seconds: float
    samples_per_second: float
    evaluation: dict[str, Any]


def train_ticker(session: Session, settings: Settings, ticker: str) -> TrainResult:
    """Train a version on all stored prices (rolling-origin backtest, refit on every day, serving
    method), register and promote it.

    Everything happens in the caller's transaction. Long-running callers (the pipeline) use
    `training_data`, `forecaster.training.train` and `register_candidate` in separate
    transactions instead, so no transaction stays open while the network trains.
    """
    from forecaster.training import train

    row, prices = training_data(session, ticker)
    outcome = train(prices, settings, ticker=row.symbol, previous=previous_training(session, row))
    return register_candidate(session, settings, row.symbol, outcome)


def previous_training(
    session: Session,
    row: storage.Ticker,
    artifact_if: Callable[[dict[str, Any]], bool] = lambda _record: True,
) -> dict[str, Any] | None:
    """The newest version's configuration, backtest and serving record: what a quiet night may
    reuse instead of a full backtest (forecaster.training.reusable_backtest), and its artifact
    to warm-start from when `artifact_if` says so of the record (a universe night needs only
    one ticker's ensemble)."""
    versions = storage.model_versions(session, row.id)
    if not versions:
        return None
    newest = versions[0]
    metrics = newest.metrics if isinstance(newest.metrics, dict) else {}
    if newest.status == "rejected" or "backtest" not in metrics:  # legacy rows have none
        return None
    record = {
        "config": newest.config,
        "backtest": metrics["backtest"],
        "serving": metrics.get("serving"),
        "version": newest.version,
    }
    # a quiet night warm-starts from its network (None once retention pruned it)
    record["artifact"] = artifacts.read(session, newest.id) if artifact_if(record) else None
    return record


def training_data(
    session: Session, ticker: str | storage.Ticker
) -> tuple[storage.Ticker, pd.DataFrame]:
    row = require_ticker(session, ticker)
    return row, storage.load_prices(session, row.id)


def register_candidate(
    session: Session, settings: Settings, ticker: str | storage.Ticker, outcome: Any
) -> TrainResult:
    """Save a trained version's artifact, record it and promote it (or raise ModelRejected)."""
    from forecaster import registry

    row = require_ticker(session, ticker)
    version, decision = registry.register(session, settings, row, outcome)
    return TrainResult(
        model_version=version,
        promoted=decision.promoted,
        reason=decision.reason,
        train_seconds=outcome.train_seconds,
        samples_per_second=outcome.samples_per_second,
        evaluation=version.metrics,
    )


def latest_model_covers_data(
    session: Session, settings: Settings, ticker: str | storage.Ticker
) -> storage.ModelVersion | None:
    """The newest model version if it was trained on data up to the last stored day, else None.

    Such a model saw exactly the prices stored now (its served weights were fit through the last
    stored day), so retraining would repeat the same work: the pipeline skips it.
    """
    from forecaster.training import training_config

    row = require_ticker(session, ticker)
    versions = storage.model_versions(session, row.id)
    if not versions:
        return None
    _, last = storage.price_bounds(session, row.id)
    latest = versions[0]
    if latest.trained_through is None or latest.config != training_config(settings):
        # A legacy version (fit on the first 70% only) or another configuration: retrain.
        return None
    if latest.id not in artifacts.sizes(session, row.id):
        return None  # its artifact was lost before it moved into the database (0011): retrain
    return latest if last is not None and latest.trained_through >= last else None


@dataclass
class EvaluateResult:
    model_version: storage.ModelVersion
    backtest: dict[str, Any] | None  # the champion's rolling-origin backtest summary
    live: Any | None  # forecaster.evaluation.EvaluationReport on days after trained_through
    live_start: date | None


def evaluate_ticker(
    session: Session, settings: Settings, ticker: str, start: date | None = None
) -> EvaluateResult:
    """The champion's skill: its rolling-origin backtest, and its network scored walk-forward on
    the days stored since its weights were fit (from `start`, default the day after
    trained_through), against the baselines. Days up to trained_through are never scored: the
    served network was fit on them."""
    from forecaster import registry

    row = require_ticker(session, ticker)
    version, bundle = registry.load_champion(session, row)
    metrics = version.metrics if isinstance(version.metrics, dict) else {}
    # Legacy versions (single holdout) never saw their test window.
    seen_until = version.trained_through or version.test_start - timedelta(days=1)
    prices = storage.load_prices(session, row.id)
    last = prices.index[-1].date()
    if start is not None and start <= seen_until:
        raise InvalidDateRange(
            f"--start {start} is not after the champion's training data (through "
            f"{seen_until}); evaluate only on days the served model never saw"
        )
    if start is not None and start > last:
        raise InvalidDateRange(f"--start {start} is after the last stored day ({last})")
    begin = start or next_day_after(prices, seen_until)
    live = bundle.evaluate(prices, begin) if begin is not None else None
    return EvaluateResult(version, metrics.get("backtest"), live, begin if live else None)


def next_day_after(prices: pd.DataFrame, day: date) -> date | None:
    later = prices.index[prices.index > pd.Timestamp(day)]
    return later[0].date() if len(later) else None
