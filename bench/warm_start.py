"""Warm-started quiet nights against cold refits, walk-forward, on the same days, the way the
pipeline runs them.

For each ticker the last `--days` trading days are forecast one step ahead:
- warm (what a quiet night does now): every day, the previous day's network fine-tuned for
  STOCKCAST_WARM_START_EPOCHS epochs on every window so far, feature statistics kept from the
  chain's first fit; every `--reset` days (a full backtest in production, every
  STOCKCAST_BACKTEST_EVERY_DAYS = 21 new days) the chain restarts from the cold network;
- cold (what a quiet night did before): a refit from scratch, statistics included, for the epoch
  count early stopping chose at the start; refit every `--cold-every` days (daily refits cost
  too much here; a network a few days old forecasts as well: the cold side is not handicapped).

Printed per ticker: MAE ratios to persistence, warm/cold, a Diebold-Mariano test of warm vs cold
(t < 0: warm more accurate; p_worse = one-sided p-value of "cold is more accurate"), and the fit
seconds of each side. Run: .venv/bin/python bench/warm_start.py [TICKER ...]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pandas as pd

from forecaster.backtest import fit_upto
from forecaster.evaluation import diebold_mariano
from forecaster.model import FINE_TUNE_LR_FACTOR, LSTMForecaster
from forecaster.providers.sample import SampleProvider
from forecaster.providers.synthetic import SyntheticProvider
from forecaster.settings import Settings
from forecaster.training import fit_all
from forecaster.windows import make_windows


def fetch(ticker: str) -> pd.DataFrame:
    provider = SyntheticProvider() if ticker.startswith("SYN-") else SampleProvider()
    return provider.fetch(ticker, None, None)


def walk(ticker: str, settings: Settings, days: int, cold_every: int, reset: int) -> None:
    prices = fetch(ticker)
    window, features = settings.window, settings.features
    n_samples = len(prices) - window
    start = n_samples - days  # first forecast: sample index `start`
    chosen = fit_upto(prices, start, window, features, settings.model, settings.val_fraction)
    cold_pred, warm_pred, actual, last = [], [], [], []
    cold_seconds = warm_seconds = 0.0
    for origin in range(start, n_samples):
        k = origin - start
        if k % cold_every == 0:  # the pipeline's own refit on every day so far
            upto = prices.iloc[: window + origin]  # the last target seen: sample origin - 1
            cold, cold_stats, _ = fit_all(upto, settings, chosen.best_epoch)
            cold_seconds += cold.train_seconds_
            # Windows depend on the statistics and the rows only: those of the whole frame,
            # cut at `origin`, are the ones a fit on the days so far would build.
            cold_windows = make_windows(prices, cold_stats)
        if k % reset == 0:  # a full backtest night: the chain restarts from the cold network
            warm_windows, warm_stats = cold_windows, cold_stats
            warm = LSTMForecaster(cold.params)
            warm.model_ = cold.model_
            warm._compile_inference()
        else:
            seen = warm_windows.part(0, origin)
            warm.fine_tune(seen.X, seen.y, settings.warm_start_epochs)
            warm_seconds += warm.train_seconds_
        for model, windows, stats, out in (
            (cold, cold_windows, cold_stats, cold_pred),
            (warm, warm_windows, warm_stats, warm_pred),
        ):
            day = windows.part(origin, origin + 1)
            out.append(day.last_close * np.exp(model.predict(day.X) * stats.return_std))
        actual.append(day.next_close)
        last.append(day.last_close)
    c, w = np.concatenate(cold_pred), np.concatenate(warm_pred)
    a, p = np.concatenate(actual), np.concatenate(last)
    mae = {k: float(np.mean(np.abs(v - a))) for k, v in (("cold", c), ("warm", w), ("pers", p))}
    dm = diebold_mariano(w - a, c - a)
    print(
        f"{ticker:<11} {len(a):>4} {mae['cold'] / mae['pers']:>10.4f} "
        f"{mae['warm'] / mae['pers']:>10.4f} {mae['warm'] / mae['cold']:>10.4f} "
        f"{dm.stat:>7.2f} {1 - dm.pvalue:>8.3f} {cold_seconds:>10.1f} {warm_seconds:>10.1f}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("tickers", nargs="*", default=["SYN-AR30-2", "SYN-RW-3", "GOOG"])
    parser.add_argument("--days", type=int, default=250)
    parser.add_argument("--cold-every", type=int, default=10)
    parser.add_argument("--reset", type=int, default=20, help="warm chain length in days")
    args = parser.parse_args()
    if args.reset % args.cold_every:
        parser.error(
            "--reset must be a multiple of --cold-every (the chain restarts from a cold fit)"
        )
    settings = Settings.from_env()
    print(
        f"walk-forward {args.days} days: warm fine-tuned daily ({settings.warm_start_epochs} "
        f"epochs at {FINE_TUNE_LR_FACTOR:g} x the learning rate), chain restarted every "
        f"{args.reset} days; cold refit every {args.cold_every} "
        f"days; model {settings.model.units}"
    )
    print(
        f"{'ticker':<11} {'n':>4} {'cold/pers':>10} {'warm/pers':>10} {'warm/cold':>10}"
        f" {'DM t':>7} {'p_worse':>8} {'cold fit s':>10} {'warm fit s':>10}"
    )
    t0 = time.perf_counter()
    for ticker in args.tickers:
        walk(ticker, settings, args.days, args.cold_every, args.reset)
    print(f"({time.perf_counter() - t0:.0f}s)")


if __name__ == "__main__":
    main()
