"""Model scope benchmark: one network per ticker (`ticker`) vs one network for the universe
(`universe`, forecaster.pooled), side by side in one run, on a mixed synthetic universe whose
processes are known: AR(1) returns at several coefficients and volatility levels (the network
should serve), random walks and GARCH(1,1) walks (nothing to predict in the mean: a baseline
should serve).

Both scopes see the same prices and the same rolling-origin backtest settings; each ticker's
record and serving decision come from the same code (forecaster.backtest.assemble_backtest,
forecaster.policy). Per group it prints the mean MAE ratio to persistence, the oracle's ratio on
the same days, the share of tickers the network serves, and the fit time.

Run: .venv/bin/python bench/universe_model.py [--tickers 60] [--days 1500] [--members 3]
         [--ticker-scope 60] [--seeds 42]
`--ticker-scope N` runs ticker scope on the first N tickers only (it costs one network per ticker
per fold); `--seeds 42,1,2` repeats universe scope with other base seeds and counts the tickers
whose served method changes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pandas as pd

from forecaster.backtest import BacktestResult, run_backtest
from forecaster.evaluation import diebold_mariano
from forecaster.policy import choose_method
from forecaster.providers.sample import SampleProvider
from forecaster.providers.synthetic import SyntheticProvider, oracle_log_return, parse
from forecaster.settings import Settings
from forecaster.training import backtest_config
from forecaster.universe_backtest import run_universe_backtest

TUNING_END = date(2016, 12, 30)  # ^IXIC as bench/tuning.py cuts it
TEMPLATES = (
    *(f"AR{phi}V{v}" for phi in (10, 30, 50) for v in (1, 2, 4)),
    *(f"RWV{v}" for v in (1, 2, 4)),
    *(f"GARCHV{v}" for v in (1, 2, 4)),
)


def universe_symbols(n: int) -> list[str]:
    """n symbols cycling through TEMPLATES (15 per round), each round a new seed."""
    return [f"SYN-{TEMPLATES[i % len(TEMPLATES)]}-{i // len(TEMPLATES) + 1}" for i in range(n)]


def group(symbol: str) -> str:
    if not symbol.startswith("SYN-"):
        return symbol  # a real series: its own row
    process = parse(symbol)
    if process.garch:
        return "GARCH"
    if process.phi == 0:
        return "RW"
    return f"AR{round(process.phi * 100)}"


def oracle_ratio(symbol: str, prices: pd.DataFrame, result: BacktestResult) -> float:
    """The true process's MAE ratio to persistence on the backtest's days (nan: a real series)."""
    if not symbol.startswith("SYN-"):
        return float("nan")
    close = prices["close"].to_numpy(dtype="float64")
    r = np.diff(np.log(close))
    rows = prices.index.get_indexer(result.target_dates) - 1  # origin rows
    forecast = close[rows] * np.exp(oracle_log_return(parse(symbol), r[rows - 1]))
    err = np.abs(forecast - close[rows + 1])
    return float(np.mean(err) / np.mean(np.abs(close[rows] - close[rows + 1])))


def oracle_pvalue(symbol: str, prices: pd.DataFrame, result: BacktestResult) -> float:
    """The true process's DM p-value against the ticker's best baseline, same days."""
    if not symbol.startswith("SYN-"):
        return float("nan")
    close = prices["close"].to_numpy(dtype="float64")
    r = np.diff(np.log(close))
    rows = prices.index.get_indexer(result.target_dates) - 1
    forecast = close[rows] * np.exp(oracle_log_return(parse(symbol), r[rows - 1]))
    best = result.summary["best_baseline"]
    return float(diebold_mariano(forecast - result.actual, result.errors(best)).pvalue)


def serves(result: BacktestResult, settings: Settings) -> str:
    return choose_method(
        result.summary, settings.min_backtest_forecasts, settings.skill_alpha
    ).method


def table(
    label: str,
    results: dict[str, BacktestResult],
    universe: dict[str, pd.DataFrame],
    settings: Settings,
    seconds: float,
) -> dict[str, str]:
    by_group: dict[str, list[tuple[float, float, bool]]] = defaultdict(list)
    methods = {}
    for symbol, result in results.items():
        method = serves(result, settings)
        methods[symbol] = method
        by_group[group(symbol)].append(
            (
                result.summary["mae_ratio"],
                oracle_ratio(symbol, universe[symbol], result),
                method == "lstm",
            )
        )
    misses = [
        s
        for s, m in methods.items()
        if s.startswith("SYN-")
        and (m == "lstm") != (group(s) in ("AR30", "AR50"))
        and group(s) != "AR10"  # phi 0.1: too weak to call either way at 500 forecasts
    ]
    print(f"\n{label}: {len(results)} tickers, fits {seconds:.0f} s")
    for s in misses:
        bt = results[s].summary
        print(
            f"  unexpected: {s} serves {methods[s]} (MAE ratio {bt['mae_ratio']:.4f}, oracle "
            f"{oracle_ratio(s, universe[s], results[s]):.4f}, DM p vs {bt['best_baseline']} "
            f"{bt['dm_best_pvalue']:.3g}, oracle's {oracle_pvalue(s, universe[s], results[s]):.3g})"
        )
    print(f"  {'group':<7} {'n':>3} {'MAE ratio':>9} {'oracle':>7} {'gap':>7} {'net serves':>10}")
    for name in sorted(by_group):
        rows = np.array(by_group[name], dtype="float64")
        print(
            f"  {name:<7} {len(rows):>3} {rows[:, 0].mean():9.4f} {rows[:, 1].mean():7.4f} "
            f"{rows[:, 0].mean() - rows[:, 1].mean():7.4f} {rows[:, 2].mean():10.0%}"
        )
    return methods


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tickers", type=int, default=60)
    parser.add_argument("--days", type=int, default=1500, help="history per ticker (trading days)")
    parser.add_argument("--members", type=int, default=3, help="ensemble size (universe scope)")
    parser.add_argument("--ticker-scope", type=int, default=None, help="tickers (default: all)")
    parser.add_argument("--seeds", default="42", help="base seeds for universe scope")
    parser.add_argument(
        "--no-real",
        action="store_true",
        help="leave out ^IXIC to 2016-12-30 (the real tuning series, in both scopes)",
    )
    args = parser.parse_args()
    settings = Settings.from_env()
    symbols = universe_symbols(args.tickers)
    provider = SyntheticProvider()
    # With ^IXIC every series ends on its tuning cut, so that the universe shares one calendar
    # (the synthetic processes have no calendar of their own).
    end = None if args.no_real else TUNING_END
    universe = {s: provider.fetch(s, None, end).iloc[-args.days :] for s in symbols}
    if not args.no_real:  # the only real series model choices may be made on, cut as in tuning
        ixic = SampleProvider().fetch("^IXIC", None, TUNING_END)
        universe["^IXIC"] = ixic.iloc[-args.days :]
        symbols = ["^IXIC", *symbols]
    config = backtest_config(settings)
    print(
        f"{len(symbols)} synthetic tickers x {args.days} days; backtest {config.days} days, refit "
        f"every {config.refit_every}; model {settings.model.units} highway "
        f"{settings.model.highway}; serving rule DM p < {settings.skill_alpha}"
    )
    decisions = []
    count = len(symbols) if args.ticker_scope is None else args.ticker_scope
    real: dict[str, list[tuple[int, float, float, float]]] = defaultdict(list)
    for seed in [int(s) for s in args.seeds.split(",")]:
        params = settings.model.replace(seed=seed)
        started = time.perf_counter()
        bt = run_universe_backtest(
            universe, settings.window, settings.features, params, config, args.members
        )
        wall = time.perf_counter() - started
        label = f"universe scope (seed {seed}, {args.members} members, folds {len(bt.folds)})"
        decisions.append(table(label, bt.results, universe, settings, wall))
        print(f"  best epochs per fold {bt.best_epochs}; pooled windows {bt.n_windows}")
        if not count:
            continue
        started = time.perf_counter()
        results = {
            s: run_backtest(universe[s], settings.window, settings.features, params, config, s)
            for s in symbols[:count]
        }
        wall = time.perf_counter() - started
        table(
            f"ticker scope (seed {seed}, one network per ticker)", results, universe, settings, wall
        )
        for s in symbols[:count]:
            if not s.startswith("SYN-"):
                mine, theirs = bt.results[s], results[s]
                # on the days both scopes forecast (the universe's common fold origins can
                # start a fold later than the ticker's own)
                days = mine.target_dates.intersection(theirs.target_dates)
                a = mine.errors("model")[mine.target_dates.get_indexer(days)]
                b = theirs.errors("model")[theirs.target_dates.get_indexer(days)]
                naive = theirs.errors("persistence")[theirs.target_dates.get_indexer(days)]
                one_sided = diebold_mariano(a, b).pvalue
                p = 2 * min(one_sided, 1 - one_sided)  # either scope better
                scale = np.mean(np.abs(naive))
                real[s].append(
                    (seed, np.mean(np.abs(a)) / scale, np.mean(np.abs(b)) / scale, float(p))
                )
                print(
                    f"  {s}: {len(days)} common days (universe {mine.n}, ticker {theirs.n}); "
                    f"whole records: universe {mine.summary['mae_ratio']:.4f}, "
                    f"ticker {theirs.summary['mae_ratio']:.4f}"
                )
    if len(decisions) > 1:
        same = sum(len({d[s] for d in decisions}) == 1 for s in symbols)
        print(f"\nserved method identical over {len(decisions)} seeds: {same}/{len(symbols)}")
    for s, rows in real.items():
        print(f"\n{s}: network MAE ratio to persistence on the common days, universe vs ticker")
        for seed, u, t, p in rows:
            print(f"  seed {seed:>3}: universe {u:.4f}  ticker {t:.4f}  two-sided DM p {p:.3f}")
        mean = np.array([(u, t) for _, u, t, _ in rows]).mean(axis=0)
        print(f"  mean    : universe {mean[0]:.4f}  ticker {mean[1]:.4f}")


if __name__ == "__main__":
    main()
