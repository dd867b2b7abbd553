"""Tuning benchmark: the rolling-origin backtest of model variants on the tuning series only.

Every model choice (the learning rate, L2, the ridge highway, ...) is made here, on series and
periods the README never reports: the synthetic SYN-AR30-2 and SYN-RW-3 (known processes, with
their oracle) and the real NASDAQ Composite (^IXIC) cut at 2016-12-30, so that its backtest
(2015-2016) overlaps neither ^GSPC's (2017-2018) nor GOOG's (2011-2013) reported backtests.

Run: .venv/bin/python bench/tuning.py [--set highway=none --set epochs=0 ...] [TICKER ...]
Each --set overrides one field of ModelParams (forecaster/params.py) for this run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from forecaster.params import ModelParams
from forecaster.settings import Settings
from forecaster.training import train

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy import fetch, fmt, oracle

TUNING = ("SYN-AR30-2", "SYN-RW-3", "^IXIC")
TUNING_END = {"^IXIC": date(2016, 12, 30)}


def override(params: ModelParams, assignments: list[str]) -> ModelParams:
    changes: dict[str, object] = {}
    for item in assignments:
        name, _, raw = item.partition("=")
        current = getattr(params, name)  # AttributeError: not a ModelParams field
        if isinstance(current, tuple):
            changes[name] = tuple(int(v) for v in raw.split(","))
        elif isinstance(current, bool):
            changes[name] = raw.lower() in ("1", "true", "yes")
        else:
            changes[name] = type(current)(raw)
    return params.replace(**changes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("tickers", nargs="*", default=list(TUNING))
    parser.add_argument("--set", action="append", default=[], dest="assignments")
    args = parser.parse_args()
    # The network's own choices, made one ticker at a time (forecaster.training.train).
    settings = Settings.from_env().replace(model_scope="ticker")
    settings = settings.replace(model=override(settings.model, args.assignments))
    print(f"model: {settings.model}")
    print(
        f"  {'ticker':<11} {'backtest':<23} {'ratio':>7} {'oracle':>7} {'best base':>14} "
        f"{'vs best':>7} {'DM p':>8} {'cov':>6} {'epochs':<18} {'secs':>6}"
    )
    for ticker in args.tickers:
        prices = fetch(ticker)
        end = TUNING_END.get(ticker)
        if end is not None:
            prices = prices.loc[: str(end)]
        started = time.perf_counter()
        bt = train(prices, settings, ticker).backtest
        orc = oracle(ticker, prices, bt["start"])
        print(
            f"  {ticker:<11} {bt['start']}..{bt['end']} {bt['mae_ratio']:7.4f} "
            f"{fmt(orc[0] if orc else None, '7.4f'):>7} {bt['best_baseline']:>14} "
            f"{bt['best_baseline_mae_ratio']:7.4f} {fmt(bt['dm_best_pvalue'], '8.3g'):>8} "
            f"{fmt(bt['coverage_by_method']['model'], '6.1%'):>6} "
            f"{','.join(map(str, bt['best_epochs'])):<18} {time.perf_counter() - started:6.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
