"""Rolling-origin (expanding window) backtest: the skill estimate of a model version.

The last `days` forecastable days are cut into folds of `refit_every` days. For each fold the
network is refit from scratch on every window whose target lies before the fold (statistics on
the training part only, early stopping on the most recent `val_fraction` of it), then forecasts
each day of the fold one step ahead: every forecast comes from a model that saw nothing after
its origin, as a nightly retrained model would have done. The baselines (persistence, drift,
constant median return) forecast the same days from the same information, so the comparison,
the Diebold-Mariano tests and the interval coverage are all on identical targets.

Intervals are volatility-scaled split conformal: each forecast's absolute log residual is
divided by the EWMA volatility at its origin (forecaster.evaluation.ewma_volatility). Fold k's
intervals use the conformal quantile of those scaled residuals from folds 0..k-1, so the reported
coverage (folds 1.. only) is out of sample. The scale served after the backtest is the quantile
over all backtest forecasts, none of which chose an epoch of the served network; a served
interval is exp(forecast log return +- scale * today's EWMA volatility).
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from forecaster.errors import InsufficientHistory
from forecaster.evaluation import (
    DRIFT_LOOKBACK,
    baseline_forecasts,
    conformal_halfwidth,
    diebold_mariano,
    ewma_volatility,
    metrics,
)
from forecaster.model import LSTMForecaster
from forecaster.params import ModelParams
from forecaster.policy import BASELINES
from forecaster.providers.base import OHLCV
from forecaster.validation import GAP_DAYS
from forecaster.windows import MIN_TRAIN, MIN_VAL, FeatureStats, fit_stats, make_windows

log = logging.getLogger(__name__)

SCHEME = "rolling-origin"


@dataclass(frozen=True)
class BacktestConfig:
    days: int = 500  # forecasts in the backtest, where history allows
    refit_every: int = 125  # days per fold: one refit per fold
    val_fraction: float = 0.15  # most recent share of each fold's training windows: early stopping
    coverage: float = 0.9  # nominal coverage of the conformal interval


@dataclass(frozen=True)
class FoldFit:
    """A network fitted on the windows before `stop` (sample index), with its statistics."""

    model: LSTMForecaster
    stats: FeatureStats
    n_fit: int  # samples used (train + validation)
    best_epoch: int
    epochs_run: int
    seconds: float


def min_fit_samples(n_samples: int) -> int:
    """The first fold trains on at least half the history (and never on fewer than 50 windows)."""
    return max(MIN_TRAIN + MIN_VAL, n_samples // 2)


def plan_folds(n_samples: int, days: int, refit_every: int) -> list[tuple[int, int]]:
    """[start, stop) sample ranges of the folds, oldest first, covering the last forecastable days."""
    size = min(days, n_samples - min_fit_samples(n_samples))
    if size < 1:
        raise InsufficientHistory("ticker", n_samples, MIN_TRAIN + MIN_VAL + 1)
    start = n_samples - size
    return [(a, min(a + refit_every, n_samples)) for a in range(start, n_samples, refit_every)]


def fit_upto(
    prices: pd.DataFrame,
    n_fit: int,
    window: int,
    features: tuple[str, ...],
    params: ModelParams,
    val_fraction: float,
) -> FoldFit:
    """Fit on samples [0, n_fit): train on the older part, stop early on the newest slice."""
    n_val = max(MIN_VAL, round(n_fit * val_fraction))
    n_train = n_fit - n_val
    if n_train < MIN_TRAIN:
        raise InsufficientHistory("ticker", n_fit + window, MIN_TRAIN + MIN_VAL + window)
    train_end = prices.index[window - 1 + n_train].date()  # target of the last training sample
    stats = fit_stats(prices, window, features, train_end)
    ws = make_windows(prices, stats)
    model = LSTMForecaster(params).fit(
        ws.X[:n_train],
        ws.y[:n_train],
        ws.X[n_train:n_fit],
        ws.y[n_train:n_fit],
        feature_names=stats.features,
    )
    return FoldFit(model, stats, n_fit, model.best_epoch_, model.epochs_run_, model.train_seconds_)


@dataclass
class BacktestResult:
    target_dates: pd.DatetimeIndex
    actual: np.ndarray
    last_close: np.ndarray
    forecasts: dict[str, np.ndarray]  # method -> forecast close ("model" and BASELINES)
    origin_sigma: np.ndarray  # EWMA volatility at each forecast's origin
    covered: dict[str, np.ndarray]  # method -> bool per forecast of folds 1.. (fold 0: no past)
    folds: list[tuple[int, int]]
    origins: list[date]  # last close each fold's model saw
    best_epochs: list[int]
    epochs_run: list[int]
    fit_seconds: float
    config: BacktestConfig
    history: dict[str, Any] = field(default_factory=dict)  # fingerprint of the prices it saw
    summary: dict[str, Any] = field(default_factory=dict)
    # calendar days from each forecast's origin bar to its target bar (1-4 normally)
    step_days: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    as_of: pd.DatetimeIndex = field(default_factory=lambda: pd.DatetimeIndex([]))  # origin days
    fold_of: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    # method -> each fold's conformal scale (units of origin volatility); NaN: fold 0, no past
    fold_scales: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.actual)

    def errors(self, method: str) -> np.ndarray:
        return self.forecasts[method] - self.actual

    def log_residuals(self, method: str) -> np.ndarray:
        return np.log(self.actual / self.forecasts[method])

    def interval_scale(self, method: str) -> float:
        """Served interval half-width of `method` in units of EWMA volatility."""
        scaled = np.abs(self.log_residuals(method)) / self.origin_sigma
        return conformal_halfwidth(scaled, self.config.coverage)

    def to_dict(self) -> dict[str, Any]:
        table = {
            name: metrics(self.actual, forecast, self.last_close)
            for name, forecast in self.forecasts.items()
        }
        table["persistence"]["directional_accuracy"] = None  # never calls a direction
        baseline_mae = {name: table[name]["mae"] for name in BASELINES}
        best = min(BASELINES, key=lambda name: baseline_mae[name])  # ties: the simplest first
        dm = {}
        for name in BASELINES:
            result = diebold_mariano(self.errors("model"), self.errors(name))
            dm[name] = {"stat": _finite(result.stat), "pvalue": _finite(result.pvalue)}
        mae = table["model"]["mae"]
        persistence_mae = table["persistence"]["mae"]
        return {
            "scheme": SCHEME,
            "folds": len(self.folds),
            "refit_every": self.config.refit_every,
            "n_forecasts": self.n,
            "start": self.target_dates[0].date().isoformat(),
            "end": self.target_dates[-1].date().isoformat(),
            "origins": [d.isoformat() for d in self.origins],
            "metrics": table,
            "mae": mae,
            "persistence_mae": persistence_mae,
            "mae_ratio": _ratio(mae, persistence_mae),
            "best_baseline": best,
            "best_baseline_mae": baseline_mae[best],
            "best_baseline_mae_ratio": _ratio(mae, baseline_mae[best]),
            "dm_stat": dm["persistence"]["stat"],
            "dm_pvalue": dm["persistence"]["pvalue"],
            "dm_best_stat": dm[best]["stat"],
            "dm_best_pvalue": dm[best]["pvalue"],
            "dm": dm,
            "dm_test": "Diebold-Mariano, absolute-error loss, Newey-West variance, HLN "
            "correction; one-sided p-value for 'the network is more accurate'",
            # the network's interval; every method's own interval in coverage_by_method
            "coverage": _share(self.covered["model"]),
            "coverage_by_method": {m: _share(c) for m, c in self.covered.items()},
            "coverage_n": len(self.covered["model"]),
            "nominal_coverage": self.config.coverage,
            "interval": "volatility-scaled split conformal (EWMA lambda 0.94)",
            "interval_scales": {m: self.interval_scale(m) for m in ("model", *BASELINES)},
            "best_epochs": self.best_epochs,
            "epochs_run": self.epochs_run,
            "fit_seconds": round(self.fit_seconds, 3),
            "history": self.history,
            "gaps": self.gaps(),
        }

    def gaps(self) -> dict[str, Any]:
        """Forecasts across a break of more than GAP_DAYS calendar days: each is scored as one
        step, so the document says how many there are and the longest."""
        long = self.step_days[self.step_days > GAP_DAYS]
        return {
            "count": len(long),
            "largest_days": int(long.max()) if len(long) else None,
            "limit_days": GAP_DAYS,
        }


def _ratio(a: float, b: float) -> float | None:
    return a / b if b > 0 and math.isfinite(a) else None


def _share(flags: np.ndarray) -> float | None:
    return float(np.mean(flags)) if len(flags) else None


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def history_fingerprint(prices: pd.DataFrame, through: date) -> dict[str, Any]:
    """What a later night checks before reusing this backtest: the same first day, the same
    number of days up to `through`, and the same OHLCV values (a re-backfill after a split or a
    corrected row changes them)."""
    seen = prices.loc[prices.index <= pd.Timestamp(through), list(OHLCV)]
    digest = hashlib.sha256(np.ascontiguousarray(seen.to_numpy(dtype="float64")).tobytes())
    return {
        "first": prices.index[0].date().isoformat(),
        "through": through.isoformat(),
        "rows": len(seen),
        "sha256": digest.hexdigest()[:16],
    }


def median_log_return(close: np.ndarray) -> float:
    returns = np.diff(np.log(np.asarray(close, dtype="float64")))
    return float(np.median(returns)) if len(returns) else 0.0


@dataclass(frozen=True)
class FoldForecast:
    """What a fold's network said: the log-return forecasts of its windows, and how it was fit."""

    log_returns: np.ndarray
    best_epoch: int
    epochs_run: int
    seconds: float


def run_backtest(
    prices: pd.DataFrame,
    window: int,
    features: tuple[str, ...],
    params: ModelParams,
    config: BacktestConfig,
    ticker: str = "",
) -> BacktestResult:
    """Refit at each fold origin and forecast the fold one step ahead (see the module docstring)."""
    n_samples = len(prices) - window
    folds = plan_folds(n_samples, config.days, config.refit_every)
    outputs = []
    for a, b in folds:
        fit = fit_upto(prices, a, window, features, params, config.val_fraction)
        X = make_windows(prices, fit.stats).X[a:b]
        lr = fit.model.predict(X).astype("float64") * fit.stats.return_std
        outputs.append(FoldForecast(lr, fit.best_epoch, fit.epochs_run, fit.seconds))
        log.info(
            "backtest fold fitted",
            extra={
                "ticker": ticker,
                "origin": str(prices.index[a + window - 1].date()),
                "forecasts": b - a,
                "best_epoch": fit.best_epoch,
                "fit_seconds": round(fit.seconds, 2),
            },
        )
    return assemble_backtest(prices, window, folds, outputs, config)


def assemble_backtest(
    prices: pd.DataFrame,
    window: int,
    folds: list[tuple[int, int]],
    outputs: list[FoldForecast],
    config: BacktestConfig,
) -> BacktestResult:
    """A ticker's backtest record from its folds' network forecasts: the baselines on the same
    days from the same information, the conformal intervals (fold k's from folds before k), the
    metrics and Diebold-Mariano tests. Shared by ticker scope (run_backtest) and universe scope
    (forecaster.universe_backtest), so both judge a ticker by the same rules."""
    close = prices["close"].to_numpy(dtype="float64")
    sigma = ewma_volatility(close)
    index = pd.DatetimeIndex(prices.index)
    parts: dict[str, list[np.ndarray]] = {"model": [], **{b: [] for b in BASELINES}}
    actual, last_close, dates, sigmas, steps = [], [], [], [], []
    covered: dict[str, list[np.ndarray]] = {m: [] for m in parts}
    past: dict[str, list[np.ndarray]] = {m: [] for m in parts}  # scaled |log residuals|
    origins, as_of, fold_of = [], [], []
    scales: dict[str, list[float]] = {m: [] for m in parts}
    for k, ((a, b), out) in enumerate(zip(folds, outputs, strict=True)):
        origin_index = np.arange(a + window - 1, b + window - 1)  # the close each forecast is from
        origin_row = a + window - 1  # the last close this fold's model was fit with
        origins.append(index[origin_row].date())
        fold_last, fold_next = close[origin_index], close[origin_index + 1]
        baselines = baseline_forecasts(
            close,
            origin_index,
            window,
            DRIFT_LOOKBACK,
            median_return=median_log_return(close[: origin_row + 1]),
        )
        parts["model"].append(fold_last * np.exp(out.log_returns))
        for name in BASELINES:
            parts[name].append(baselines[name])
        origin_sigma = sigma[origin_index]
        for name in parts:
            scaled = np.abs(np.log(fold_next / parts[name][-1])) / origin_sigma
            q = math.nan
            if past[name]:  # fold k's interval: the quantile of folds before k only
                q = conformal_halfwidth(np.concatenate(past[name]), config.coverage)
                covered[name].append(scaled <= q)
            scales[name].append(q)
            past[name].append(scaled)
        sigmas.append(origin_sigma)
        actual.append(fold_next)
        last_close.append(fold_last)
        dates.append(index[origin_index + 1])
        as_of.append(index[origin_index])
        fold_of.append(np.full(len(origin_index), k, dtype=np.int64))
        steps.append((index[origin_index + 1] - index[origin_index]).days.to_numpy())
    result = BacktestResult(
        target_dates=pd.DatetimeIndex(np.concatenate([d.to_numpy() for d in dates])),
        actual=np.concatenate(actual),
        last_close=np.concatenate(last_close),
        forecasts={name: np.concatenate(p) for name, p in parts.items()},
        origin_sigma=np.concatenate(sigmas),
        covered={
            m: np.concatenate(c) if c else np.zeros(0, dtype=bool) for m, c in covered.items()
        },
        folds=folds,
        origins=origins,
        best_epochs=[o.best_epoch for o in outputs],
        epochs_run=[o.epochs_run for o in outputs],
        fit_seconds=sum(o.seconds for o in outputs),
        config=config,
        history=history_fingerprint(prices, index[-1].date()),
        step_days=np.concatenate(steps).astype(np.int64),
        as_of=pd.DatetimeIndex(np.concatenate([d.to_numpy() for d in as_of])),
        fold_of=np.concatenate(fold_of),
        fold_scales={m: np.asarray(q, dtype="float64") for m, q in scales.items()},
    )
    result.summary = result.to_dict()
    return result
