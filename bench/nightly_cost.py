"""What a night costs per ticker: a full night (rolling-origin backtest + refit on every day)
against a quiet night (one new day: the backtest still holds, one refit), in one run.

Run: .venv/bin/python bench/nightly_cost.py [TICKER ...]   (default: ^GSPC GOOG SYN-RW-1)
A night with no new day trains nothing (the pipeline skips it), so it is not timed here.
"""

from __future__ import annotations

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


def fetch(ticker: str) -> pd.DataFrame:
    provider = SyntheticProvider() if ticker.startswith("SYN-") else SampleProvider()
    return provider.fetch(ticker, None, None)


def main(tickers: list[str]) -> None:
    settings = Settings.from_env()
    print(
        f"backtest {settings.backtest_days} days, refit every {settings.backtest_refit_every}; "
        f"full backtest again after {settings.backtest_every_days} new days"
    )
    print(
        f"{'ticker':<11} {'days':>5} {'full night s':>12} {'fits':>5} {'quiet night s':>13} "
        f"{'epochs':>6} {'quiet/full':>10}"
    )
    for ticker in tickers:
        prices = fetch(ticker)
        started = time.perf_counter()
        full = train(prices.iloc[:-1], settings, ticker)
        full_s = time.perf_counter() - started
        previous = {"config": full.config, "backtest": full.backtest, "serving": full.serving}
        started = time.perf_counter()
        quiet = train(prices, settings, ticker, previous=previous)  # one new day
        quiet_s = time.perf_counter() - started
        assert quiet.backtest_reused
        print(
            f"{ticker:<11} {len(prices):>5} {full_s:12.1f} {full.backtest['folds'] + 1:>5} "
            f"{quiet_s:13.1f} {quiet.final_epochs:>6} {quiet_s / full_s:10.2f}"
        )


if __name__ == "__main__":
    main(sys.argv[1:] or ["^GSPC", "GOOG", "SYN-RW-1"])
