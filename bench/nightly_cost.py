"""What a night costs per ticker: a full night (rolling-origin backtest + refit on every day)
against a quiet night (one new day: the backtest still holds, one refit), in one run.

Run: .venv/bin/python bench/nightly_cost.py [--against field=value ...] [TICKER ...]
(default tickers: ^GSPC GOOG SYN-RW-1). With --against (a ModelParams field, as bench/tuning.py's
--set), each ticker is timed with that variant too, right before the configured model, in the
same run: e.g. `--against highway=none` prices the highway.
A night with no new day trains nothing (the pipeline skips it), so it is not timed here.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pandas as pd

from forecaster.providers.sample import SampleProvider
from forecaster.providers.synthetic import SyntheticProvider
from forecaster.settings import Settings
from forecaster.training import train

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tuning import override


def fetch(ticker: str) -> pd.DataFrame:
    provider = SyntheticProvider() if ticker.startswith("SYN-") else SampleProvider()
    return provider.fetch(ticker, None, None)


def night(prices: pd.DataFrame, settings: Settings, ticker: str) -> tuple[float, int, float, int]:
    """(full night s, its fits, quiet night s, the quiet night's epochs)"""
    started = time.perf_counter()
    full = train(prices.iloc[:-1], settings, ticker)
    full_s = time.perf_counter() - started
    previous = {"config": full.config, "backtest": full.backtest, "serving": full.serving}
    started = time.perf_counter()
    quiet = train(prices, settings, ticker, previous=previous)  # one new day
    quiet_s = time.perf_counter() - started
    assert quiet.backtest_reused
    return full_s, full.backtest["folds"] + 1, quiet_s, quiet.final_epochs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("tickers", nargs="*", default=["^GSPC", "GOOG", "SYN-RW-1"])
    parser.add_argument("--against", action="append", default=[], dest="assignments")
    args = parser.parse_args()
    # A ticker's own network (forecaster.training.train): the cost of a ticker-scope night.
    settings = Settings.from_env().replace(model_scope="ticker")
    variants = [("configured", settings)]
    if args.assignments:
        label = ",".join(args.assignments)
        variants.insert(
            0, (label, settings.replace(model=override(settings.model, args.assignments)))
        )
    print(
        f"backtest {settings.backtest_days} days, refit every {settings.backtest_refit_every}; "
        f"full backtest again after {settings.backtest_every_days} new days"
    )
    width = max(len(label) for label, _ in variants)
    print(
        f"{'ticker':<11} {'model':<{width}} {'days':>5} {'full night s':>12} {'fits':>5} "
        f"{'quiet night s':>13} {'epochs':>6} {'quiet/full':>10}"
    )
    for ticker in args.tickers:
        prices = fetch(ticker)
        for label, variant in variants:
            full_s, fits, quiet_s, epochs = night(prices, variant, ticker)
            print(
                f"{ticker:<11} {label:<{width}} {len(prices):>5} {full_s:12.1f} {fits:>5} "
                f"{quiet_s:13.1f} {epochs:>6} {quiet_s / full_s:10.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
