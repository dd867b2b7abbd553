"""The rolling-origin backtest in universe scope: one pooled fit per fold for every ticker.

Fold origins are common calendar dates: the last `days` target dates of the universe's calendar
(every date some ticker trades) cut into folds of `refit_every` dates. Before each fold, one
UniverseForecaster (forecaster.pooled) is fitted on every ticker's windows whose target lies on or
before the fold's origin (each ticker's statistics on its own training rows, early stopping on
the newest `val_fraction` of its windows), then forecasts every ticker's windows of the fold one
step ahead. A fold's network saw nothing of any ticker after its origin, so perturbing any
price after a date leaves every forecast up to that date unchanged.

Each ticker then gets its own backtest record from its forecasts exactly as in ticker scope
(forecaster.backtest.assemble_backtest: baselines, Diebold-Mariano tests, conformal intervals),
plus the ensemble members' own DM p-values (how stable its decision is).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from forecaster.backtest import (
    BacktestConfig,
    BacktestResult,
    FoldForecast,
    assemble_backtest,
)
from forecaster.evaluation import diebold_mariano
from forecaster.params import ModelParams
from forecaster.pooled import Panel, UniverseForecaster
from forecaster.windows import MIN_TRAIN, MIN_VAL, FeatureStats, fit_stats, make_windows

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UniverseFold:
    origin: date  # the last date any of this fold's networks saw
    first: pd.Timestamp  # first target date of the fold
    last: pd.Timestamp  # last target date of the fold


@dataclass
class UniverseBacktest:
    folds: list[UniverseFold]
    results: dict[str, BacktestResult]  # per ticker with at least one forecast
    skipped: dict[str, str]  # ticker -> why it has no backtest
    fit_seconds: float
    best_epochs: list[int]
    n_windows: list[int]  # pooled training windows per fold
    n_tickers: list[int]  # tickers per fold's fit


def target_dates(prices: pd.DataFrame, window: int) -> pd.DatetimeIndex:
    """The target date of every window of `prices` (the day after each origin)."""
    return pd.DatetimeIndex(prices.index[window:])


def plan_universe_folds(
    calendar: pd.DatetimeIndex, days: int, refit_every: int
) -> list[UniverseFold]:
    """The last `days` dates of the calendar, in folds of `refit_every`, oldest first."""
    calendar = pd.DatetimeIndex(sorted(set(calendar)))
    size = min(days, len(calendar) - 1)
    start = len(calendar) - size
    folds = []
    for a in range(start, len(calendar), refit_every):
        b = min(a + refit_every, len(calendar))
        folds.append(UniverseFold(calendar[a - 1].date(), calendar[a], calendar[b - 1]))
    return folds


def participants(
    universe: Mapping[str, pd.DataFrame], window: int, config: BacktestConfig
) -> set[str]:
    """The tickers the universe backtest can judge: with at least one fold whose origin has
    enough of their windows before it and some of their days after it. A ticker whose history
    ends before the backtest's span (stale or delisted data) is not one of them."""
    dates = {s: target_dates(p, window) for s, p in universe.items()}
    if not dates:
        return set()
    calendar = pd.DatetimeIndex(np.concatenate([d.to_numpy() for d in dates.values()]))
    folds = plan_universe_folds(calendar, config.days, config.refit_every)
    found = set()
    for s, d in dates.items():
        for fold in folds:
            a, b = fold_range(d, fold)
            if a >= MIN_TRAIN + MIN_VAL and b > a:
                found.add(s)
                break
    return found


def fold_range(dates: pd.DatetimeIndex, fold: UniverseFold) -> tuple[int, int]:
    """A ticker's windows [a, b) whose targets fall in the fold (`dates`: its target dates);
    the a windows before it are those it may be fitted on."""
    return int(dates.searchsorted(fold.first, "left")), int(dates.searchsorted(fold.last, "right"))


def _panel(
    symbol: str,
    prices: pd.DataFrame,
    n_fit: int,
    window: int,
    features: tuple[str, ...],
    val_fraction: float,
) -> tuple[Panel, FeatureStats, np.ndarray]:
    """A ticker's fit windows [0, n_fit) (and every window, scaled by the same statistics): the older part trains, the newest slice validates;
    statistics on the training rows only (as forecaster.backtest.fit_upto)."""
    n_val = max(MIN_VAL, round(n_fit * val_fraction))
    n_train = n_fit - n_val
    train_end = prices.index[window - 1 + n_train].date()
    stats = fit_stats(prices, window, features, train_end)
    ws = make_windows(prices, stats)
    panel = Panel(symbol, ws.X[:n_train], ws.y[:n_train], ws.X[n_train:n_fit], ws.y[n_train:n_fit])
    return panel, stats, ws.X


def run_universe_backtest(
    universe: Mapping[str, pd.DataFrame],
    window: int,
    features: tuple[str, ...],
    params: ModelParams,
    config: BacktestConfig,
    members: int,
) -> UniverseBacktest:
    """One pooled fit per common fold origin; every ticker's forecasts and record (module doc)."""
    symbols = sorted(universe)
    dates = {s: target_dates(universe[s], window) for s in symbols}
    calendar = pd.DatetimeIndex(np.concatenate([d.to_numpy() for d in dates.values()]))
    folds = plan_universe_folds(calendar, config.days, config.refit_every)
    outputs: dict[str, list[FoldForecast]] = {s: [] for s in symbols}
    ranges: dict[str, list[tuple[int, int]]] = {s: [] for s in symbols}
    members_out: dict[str, list[np.ndarray]] = {s: [] for s in symbols}
    best_epochs, n_windows, n_tickers = [], [], []
    seconds = 0.0
    for fold in folds:
        panels, parts = [], []
        for s in symbols:
            a, b = fold_range(dates[s], fold)
            if a < MIN_TRAIN + MIN_VAL:  # whether it trains depends on the past only
                continue
            panel, stats, X = _panel(s, universe[s], a, window, features, config.val_fraction)
            panels.append(panel)
            if b > a:  # forecasts for its days in the fold, if it has any
                parts.append((s, a, b, stats, X[a:b]))
        if not panels:
            continue
        model = UniverseForecaster(params, members, feature_names=features).fit(panels)
        seconds += model.train_seconds_
        best_epochs.append(model.best_epoch_)
        n_windows.append(model.n_windows_)
        n_tickers.append(model.n_tickers_)
        for s, a, b, stats, X in parts:
            member_lr = model.predict_members(s, X) * stats.return_std
            lr = member_lr.mean(axis=0)  # the ensemble's forecast: its members' mean
            outputs[s].append(
                FoldForecast(lr, model.best_epoch_, max(f.epochs_run for f in model.fits_), 0.0)
            )
            ranges[s].append((a, b))
            members_out[s].append(member_lr)
        log.info(
            "universe fold fitted",
            extra={
                "origin": str(fold.origin),
                "tickers": len(panels),
                "windows": model.n_windows_,
                "best_epoch": model.best_epoch_,
                "fit_seconds": round(model.train_seconds_, 2),
            },
        )
    results: dict[str, BacktestResult] = {}
    skipped: dict[str, str] = {}
    for s in symbols:
        if not outputs[s]:
            skipped[s] = "too little history before the first fold's origin"
            continue
        result = assemble_backtest(universe[s], window, ranges[s], outputs[s], config)
        results[s] = result
        result.summary["ensemble"] = {
            "members": members,
            "member_dm_best_pvalues": _member_pvalues(
                result, np.concatenate(members_out[s], axis=1)
            ),
        }
    return UniverseBacktest(folds, results, skipped, seconds, best_epochs, n_windows, n_tickers)


def _member_pvalues(result: BacktestResult, member_lr: np.ndarray) -> list[float | None]:
    """Each member's DM p-value against the ticker's best baseline (one-sided: the member is
    more accurate), on the same days as the ensemble."""
    best = result.summary["best_baseline"]
    out: list[float | None] = []
    baseline_err = result.errors(best)
    for lr in member_lr:
        forecast = result.last_close * np.exp(lr)
        p = diebold_mariano(forecast - result.actual, baseline_err).pvalue
        out.append(float(p) if np.isfinite(p) else None)
    return out


def served_panels(
    universe: Mapping[str, pd.DataFrame], window: int, features: tuple[str, ...]
) -> tuple[list[Panel], dict[str, FeatureStats]]:
    """Every ticker's windows up to its last stored day, scaled by statistics of all its rows
    (as a ticker-scope nightly model's); tickers with too few windows are left out."""
    panels, stats = [], {}
    for s in sorted(universe):
        prices = universe[s]
        if len(prices) - window < MIN_TRAIN + MIN_VAL:
            continue
        stats[s] = fit_stats(prices, window, features, prices.index[-1].date())
        ws = make_windows(prices, stats[s])
        panels.append(Panel(s, ws.X, ws.y))
    return panels, stats


def fit_served(
    universe: Mapping[str, pd.DataFrame],
    window: int,
    features: tuple[str, ...],
    params: ModelParams,
    members: int,
    epochs: int,
    *,
    start: list[list[np.ndarray]] | None = None,
    lr_factor: float = 1.0,
) -> tuple[UniverseForecaster, dict[str, FeatureStats]]:
    """The served universe network: every ticker's windows up to its last stored day, a fixed
    number of epochs (the backtest's newest fold chose it; 0: the highways alone). `start`: the
    previous networks' weights, fine-tuned at `lr_factor` times the learning rate (a quiet
    night) instead of seeded new ones."""
    panels, stats = served_panels(universe, window, features)
    model = UniverseForecaster(params, members, feature_names=features)
    model.fit(panels, epochs=epochs, start=start, lr_factor=lr_factor)
    return model, stats
