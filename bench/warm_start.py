"""Warm-started quiet nights against cold refits, walk-forward, on the same days.

For each ticker the last `--days` trading days are forecast one step ahead. Every `--every` days
both models are brought up to date on all data so far, and forecast the next `--every` days:
- cold: a refit from scratch for the epoch count early stopping chose at the start (what a quiet
  night did before warm starts);
- warm: the previous warm network fine-tuned for STOCKCAST_WARM_START_EPOCHS epochs on all
  windows, feature statistics kept from the chain's first fit (what a quiet night does now).
The chain is never reset here (production resets it with a full backtest every
STOCKCAST_BACKTEST_EVERY_DAYS new days), so this is the harder case for warm starts.

Printed per ticker: MAE of cold, warm and persistence, MAE ratios, a Diebold-Mariano test of warm
vs cold (one-sided p for "warm is more accurate"; p near 1 would mean warm is worse), and the
fit seconds of each. Run: .venv/bin/python bench/warm_start.py [TICKER ...]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pandas as pd

from forecaster.backtest import fit_upto
from forecaster.evaluation import diebold_mariano
from forecaster.model import LSTMForecaster
from forecaster.providers.sample import SampleProvider
from forecaster.providers.synthetic import SyntheticProvider
from forecaster.settings import Settings
from forecaster.windows import fit_stats, make_windows


def fetch(ticker: str) -> pd.DataFrame:
    provider = SyntheticProvider() if ticker.startswith("SYN-") else SampleProvider()
    return provider.fetch(ticker, None, None)


def walk(ticker: str, settings: Settings, days: int, every: int) -> None:
    prices = fetch(ticker)
    window, features = settings.window, settings.features
    n_samples = len(prices) - window
    start = n_samples - days  # first forecast: sample index `start`
    chosen = fit_upto(prices, start, window, features, settings.model, settings.val_fraction)
    epochs = chosen.best_epoch
    warm_stats = fit_stats(prices, window, features, prices.index[window - 1 + start - 1].date())
    warm_model: LSTMForecaster | None = None
    cold_pred, warm_pred, actual, last = [], [], [], []
    cold_seconds = warm_seconds = 0.0
    for origin in range(start, n_samples, every):
        upto = prices.iloc[: window + origin]  # the last target seen: sample origin - 1
        stop = min(origin + every, n_samples)
        # cold: statistics and network fit from scratch on every day so far
        stats = fit_stats(upto, window, features, upto.index[-1].date())
        ws = make_windows(upto, stats)
        cold = LSTMForecaster(replace(settings.model, epochs=max(1, epochs))).fit(ws.X, ws.y)
        cold_seconds += cold.train_seconds_
        # warm: the chain's network fine-tuned on every window so far
        wws = make_windows(upto, warm_stats)
        if warm_model is None:
            warm_model = LSTMForecaster(replace(settings.model, epochs=max(1, epochs))).fit(
                wws.X, wws.y
            )
        else:
            warm_model.fine_tune(wws.X, wws.y, settings.warm_start_epochs)
        warm_seconds += warm_model.train_seconds_
        full_c = make_windows(prices, stats).part(origin, stop)
        full_w = make_windows(prices, warm_stats).part(origin, stop)
        cold_pred.append(full_c.last_close * np.exp(cold.predict(full_c.X) * stats.return_std))
        warm_pred.append(
            full_w.last_close * np.exp(warm_model.predict(full_w.X) * warm_stats.return_std)
        )
        actual.append(full_c.next_close)
        last.append(full_c.last_close)
    c, w = np.concatenate(cold_pred), np.concatenate(warm_pred)
    a, p = np.concatenate(actual), np.concatenate(last)
    mae = {k: float(np.mean(np.abs(v - a))) for k, v in (("cold", c), ("warm", w), ("pers", p))}
    dm = diebold_mariano(w - a, c - a)
    print(
        f"{ticker:<11} {len(a):>4} {mae['cold'] / mae['pers']:>10.4f} {mae['warm'] / mae['pers']:>10.4f}"
        f" {mae['warm'] / mae['cold']:>10.4f} {dm.stat:>7.2f} {dm.pvalue:>7.3f}"
        f" {cold_seconds:>8.1f} {warm_seconds:>8.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("tickers", nargs="*", default=["SYN-AR30-2", "SYN-RW-3", "GOOG"])
    parser.add_argument("--days", type=int, default=250)
    parser.add_argument("--every", type=int, default=10)
    args = parser.parse_args()
    settings = Settings.from_env()
    print(
        f"walk-forward {args.days} days, both updated every {args.every} days; warm: "
        f"{settings.warm_start_epochs} epoch(s) per update; model {settings.model.units}"
    )
    print(
        f"{'ticker':<11} {'n':>4} {'cold/pers':>10} {'warm/pers':>10} {'warm/cold':>10}"
        f" {'DM t':>7} {'p':>7} {'cold fit s':>8} {'warm fit s':>8}"
    )
    t0 = time.perf_counter()
    for ticker in args.tickers:
        walk(ticker, settings, args.days, args.every)
    print(f"({time.perf_counter() - t0:.0f}s)")


if __name__ == "__main__":
    main()
