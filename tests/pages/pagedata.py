"""Seed data for the pages (browser tests and bench/pages.py): the real sample prices of ^GSPC and
GOOG, a champion per ticker with a rolling-origin backtest summary, a history of forecasts with
intervals (the drift baseline's, computed here: no training needed) and pipeline run storage.

Everything is deterministic: the same database every time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from forecaster import calendar, service, storage
from forecaster.providers.base import PriceProvider
from forecaster.providers.sample import SampleProvider
from forecaster.refresh import StepOutcome
from jobs.pipeline import run_status

Z90 = 1.6449  # two-sided 90% normal quantile


@dataclass(frozen=True)
class Seeded:
    ticker: str
    prices: int
    forecasts: int
    realized: int  # forecasts whose target close is stored


def _backtest(method: str, ratio: float, p: float, best: str, best_ratio: float) -> dict:
    mae = 10.0
    return {
        "scheme": "rolling-origin",
        "folds": 4,
        "n_forecasts": 500,
        "start": "2017-01-05",
        "end": "2018-12-31",
        "mae": mae * ratio,
        "persistence_mae": mae,
        "mae_ratio": ratio,
        "best_baseline": best,
        "best_baseline_mae": mae * best_ratio,
        "best_baseline_mae_ratio": best_ratio,
        "dm_stat": -0.35,
        "dm_pvalue": p,
        "dm_best_stat": 0.1,
        "dm_best_pvalue": min(1.0, p + 0.2),
        "coverage": 0.899,
        "coverage_by_method": {"model": 0.899, method: 0.909},
        "nominal_coverage": 0.9,
        "metrics": {
            "model": {"mae": mae * ratio, "rmse": 14.0, "mape": 0.6, "directional_accuracy": 0.52},
            "persistence": {"mae": mae, "rmse": 14.2, "mape": 0.61, "directional_accuracy": 0.5},
            "drift": {"mae": mae * 0.997, "rmse": 14.1, "mape": 0.6, "directional_accuracy": 0.53},
            "median_return": {"mae": mae, "rmse": 14.2, "mape": 0.61, "directional_accuracy": 0.5},
        },
    }


SPECS = {
    # ticker: (serving method, network MAE ratio vs persistence, DM p, best baseline, its ratio)
    "^GSPC": ("drift", 0.9928, 0.36, "drift", 0.9971),
    "GOOG": ("median_return", 1.0032, 0.89, "median_return", 1.0049),
    "SYN-AR30-1": ("lstm", 0.9712, 0.004, "drift", 0.9805),  # the network serves this one
}


def seed_pages(
    sessions: sessionmaker[Session],
    forecast_days: int = 300,
    tickers: tuple[str, ...] = ("^GSPC", "GOOG"),
    provider: PriceProvider | None = None,
    start: date | None = None,
    runs: bool = True,
) -> list[Seeded]:
    """Backfill `tickers` (all sample history by default) and store up to `forecast_days` daily
    forecasts each, the newest one for the session after the last stored close (no actual yet)."""
    out = []
    for symbol in tickers:
        with sessions.begin() as s:
            service.backfill_ticker(s, provider or SampleProvider(), symbol, start)
        with sessions.begin() as s:
            out.append(_models_and_forecasts(s, symbol, forecast_days))
    if runs:
        _runs(sessions, tickers)
    return out


def _models_and_forecasts(s: Session, symbol: str, forecast_days: int) -> Seeded:
    method, ratio, p, best, best_ratio = SPECS.get(symbol, SPECS["^GSPC"])
    ticker = storage.get_ticker(s, symbol)
    assert ticker is not None
    closes = storage.load_prices(s, ticker.id)["close"]
    days = [d.date() for d in closes.index]
    last = days[-1]
    trained_at = datetime(2019, 1, 1, 23, 30, tzinfo=UTC)
    common = dict(
        ticker_id=ticker.id,
        config={"window": 7, "units": [32, 16]},
        train_start=days[0],
        train_end=last,
        test_start=days[max(0, len(days) - 500)],
        test_end=last,
        n_train=len(days) - 8,
        persistence_mae=10.0,
        interval_halfwidth=0.02,
        interval_coverage=0.9,
        trained_through=last,
    )
    retired = storage.ModelVersion(
        version=1,
        status="retired",
        mae=10.1,
        mae_ratio=1.01,
        train_seconds=70.2,
        metrics={"metrics": {"model": {"mae": 10.1}}, "mae_ratio": 1.01},
        method="lstm",
        trained_at=trained_at - timedelta(days=30),
        **common,
    )
    champion = storage.ModelVersion(
        version=2,
        status="champion",
        mae=10.0 * ratio,
        mae_ratio=ratio,
        train_seconds=74.8,
        metrics={"backtest": _backtest(method, ratio, p, best, best_ratio)},
        method=method,
        method_reason=f"the network did not beat {best} significantly (DM p = {p + 0.2:.2f})",
        trained_at=trained_at,
        promoted_at=trained_at,
        **common,
    )
    s.add_all([retired, champion])
    s.flush()

    log_close = np.log(closes.to_numpy())
    returns = np.diff(log_close)
    # forecasts as of days[first:] (each with at least 20 returns before it), the newest for the
    # session after the last stored close
    first = max(len(days) - forecast_days, 21)
    realized = 0
    for k in range(first, len(days)):
        past = returns[max(0, k - 250) : k]
        drift = float(past.mean())
        # EWMA volatility (lambda 0.94) of the returns up to day k, as the service scales them.
        weights = 0.94 ** np.arange(len(past))[::-1]
        vol = math.sqrt(float((weights * past**2).sum() / weights.sum()))
        last_close = float(closes.iloc[k])
        target = days[k + 1] if k + 1 < len(days) else calendar.next_trading_day(days[k])
        realized += k + 1 < len(days)
        s.add(
            storage.Prediction(
                ticker_id=ticker.id,
                model_version_id=champion.id,
                as_of_date=days[k],
                target_date=target,
                last_close=last_close,
                predicted_close=last_close * math.exp(drift),
                lower=last_close * math.exp(drift - Z90 * vol),
                upper=last_close * math.exp(drift + Z90 * vol),
                coverage=0.9,
                method=method,
                method_reason=champion.method_reason,
            )
        )
    return Seeded(symbol, len(days), len(days) - first, realized)


def _runs(sessions: sessionmaker[Session], tickers: tuple[str, ...]) -> None:
    """Three nightly runs: two clean, the newest with one failed step when there are two tickers."""
    for night in range(3):
        run_id = storage.start_run(
            sessions, kind="pipeline", trigger="scheduler", tickers=list(tickers)
        )
        outcomes = []
        for i, symbol in enumerate(tickers):
            step_id = storage.start_step(sessions, run_id, symbol)
            failed = night == 2 and i == len(tickers) - 1 and len(tickers) > 1
            outcome = (
                StepOutcome(
                    symbol, status="failed", error="rate limited", error_code="rate_limited"
                )
                if failed
                else StepOutcome(symbol, rows_fetched=1, rows_inserted=0, notes=["up to date"])
            )
            storage.finish_step(sessions, step_id, outcome, 11.5 + i)
            outcomes.append(outcome)
        storage.finish_run(sessions, run_id, run_status(outcomes))
