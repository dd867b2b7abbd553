"""Accuracy benchmark: the rolling-origin backtest of the default Settings on the offline sample
tickers and synthetic series with known processes.

For each ticker it prints the network and every baseline on the same backtest days (MAE, RMSE,
MAPE, directional accuracy, MAE ratio to persistence, Diebold-Mariano statistic and one-sided
p-value vs the network), the interval coverage, the method the serving rule picks, the fit
times, and for synthetic series the oracle's MAE ratio (the best any method can do).

Run: .venv/bin/python bench/accuracy.py [TICKER ...]
(default: ^GSPC GOOG SYN-RW-1 SYN-AR30-1). Environment variables (STOCKCAST_*) change the settings.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pandas as pd

from forecaster.evaluation import diebold_mariano
from forecaster.policy import backtest_key
from forecaster.providers.sample import SampleProvider
from forecaster.providers.synthetic import SyntheticProvider, oracle_log_return, parse
from forecaster.settings import Settings
from forecaster.training import train

METHODS = ("model", "persistence", "drift", "median_return")


def fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def fetch(ticker: str) -> pd.DataFrame:
    if ticker.startswith("SYN-"):
        return SyntheticProvider().fetch(ticker, None, None)
    return SampleProvider().fetch(ticker, None, None)


def oracle(ticker: str, prices: pd.DataFrame, start: str) -> tuple[float, float] | None:
    """MAE ratio to persistence and DM p-value of the true process's forecast, same days."""
    if not ticker.startswith("SYN-"):
        return None
    close = prices["close"].to_numpy(dtype="float64")
    r = np.diff(np.log(close))
    first = int(np.searchsorted(prices.index, np.datetime64(start)))
    t = np.arange(first - 1, len(close) - 1)  # origins whose target is in the backtest
    forecast = close[t] * np.exp(oracle_log_return(parse(ticker), r[t - 1]))
    err, persistence = forecast - close[t + 1], close[t] - close[t + 1]
    dm = diebold_mariano(err, persistence)
    return float(np.mean(np.abs(err)) / np.mean(np.abs(persistence))), dm.pvalue


def main(tickers: list[str]) -> None:
    # One network per ticker (forecaster.training.train); universe scope, the default, is
    # measured side by side with it by bench/universe_model.py.
    settings = Settings.from_env().replace(model_scope="ticker")
    p = settings.model
    print(
        f"settings: window={settings.window} features={','.join(settings.features)} "
        f"units={p.units} epochs<={p.epochs} batch={p.batch_size} patience={p.patience} "
        f"lr={p.learning_rate} seed={p.seed}; backtest {settings.backtest_days} days, refit every "
        f"{settings.backtest_refit_every}; serving rule: DM p < {settings.skill_alpha} vs best "
        f"baseline and >= {settings.min_backtest_forecasts} forecasts"
    )
    rows = []
    for ticker in tickers:
        prices = fetch(ticker)
        started = time.perf_counter()
        outcome = train(prices, settings, ticker)
        total = time.perf_counter() - started
        bt = outcome.backtest
        print(
            f"\n{ticker}: {len(prices)} days {prices.index[0].date()}..{prices.index[-1].date()}; "
            f"{bt['scheme']} backtest {bt['start']}..{bt['end']}: {bt['n_forecasts']} forecasts, "
            f"{bt['folds']} folds (best epochs {bt['best_epochs']}, cap {p.epochs})"
        )
        print(
            f"  {'method':<14} {'MAE':>9} {'RMSE':>9} {'MAPE %':>7} {'dir.acc':>7} "
            f"{'ratio':>7} {'DM t':>6} {'DM p':>6}"
        )
        persistence_mae = bt["metrics"]["persistence"]["mae"]
        for method in METHODS:
            m = bt["metrics"][method]
            dm = bt["dm"].get(method, {})
            print(
                f"  {method:<14} {m['mae']:9.4f} {m['rmse']:9.4f} {m['mape']:7.3f} "
                f"{fmt(m['directional_accuracy'], '7.3f'):>7} {m['mae'] / persistence_mae:7.4f} "
                f"{fmt(dm.get('stat'), '6.2f'):>6} {fmt(dm.get('pvalue'), '6.3f'):>6}"
            )
        orc = oracle(ticker, prices, bt["start"])
        if orc is not None:
            print(f"  {'oracle':<14} ratio {orc[0]:.4f} (DM p vs persistence {orc[1]:.3g})")
        by_method = ", ".join(f"{m} {fmt(c, '.1%')}" for m, c in bt["coverage_by_method"].items())
        print(
            f"  interval: nominal {bt['nominal_coverage']:.0%}, out-of-sample coverage on "
            f"{bt['coverage_n']} forecasts: {by_method}"
        )
        print(f"  serves: {outcome.choice.method} ({outcome.choice.reason})")
        print(
            f"  cost: backtest fits {bt['fit_seconds']:.1f} s, served fit "
            f"{outcome.final_fit_seconds:.1f} s ({outcome.final_epochs} epochs on "
            f"{outcome.n_train} windows, trained through {outcome.trained_through}), "
            f"total {total:.1f} s"
        )
        rows.append((ticker, bt, outcome, orc, total))
    print("\nsummary")
    print(
        f"  {'ticker':<11} {'n':>4} {'ratio':>7} {'best base':>14} {'vs best':>7} "
        f"{'DM p(best)':>10} {'cov*':>6} {'oracle':>7} {'serves':>13} {'secs':>6}"
    )
    for ticker, bt, outcome, orc, total in rows:
        print(
            f"  {ticker:<11} {bt['n_forecasts']:>4} {bt['mae_ratio']:7.4f} "
            f"{bt['best_baseline']:>14} {bt['best_baseline_mae_ratio']:7.4f} "
            f"{fmt(bt['dm_best_pvalue'], '10.3g'):>10} "
            f"{fmt(bt['coverage_by_method'][backtest_key(outcome.choice.method)], '6.1%'):>6} "
            f"{fmt(orc[0] if orc else None, '7.4f'):>7} {outcome.choice.method:>13} {total:6.1f}"
        )


# cov*: out-of-sample coverage of the served method's interval.
if __name__ == "__main__":
    main(sys.argv[1:] or ["^GSPC", "GOOG", "SYN-RW-1", "SYN-AR30-1"])
