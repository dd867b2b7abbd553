"""Offline provider of synthetic tickers whose data-generating process is known.

For tests and benchmarks: skill claims can be checked against the best possible forecast (the
oracle), which is known exactly because the process is.

- ``SYN-RW-<n>``: geometric random walk with a small drift. Daily log return
  r_t = mu + sigma * e_t. Nothing beyond the drift is predictable; the oracle forecast is
  close_t * exp(mu), and its MAE ratio to persistence is about 1.00 (measured by
  ``bench/accuracy.py``: see README "Forecast quality").
- ``SYN-AR<k>-<n>``: log returns follow an AR(1) with coefficient phi = k / 100:
  r_t = mu + phi (r_{t-1} - mu) + sigma * e_t. The oracle forecast is
  close_t * exp(mu + phi (r_t - mu)); with Gaussian shocks its MAE ratio to persistence is
  about sqrt(1 - phi^2) (0.954 for ``SYN-AR30-*``).
- ``SYN-GARCH-<n>``: a GARCH(1,1) walk, r_t = mu + s_t e_t with
  s_t^2 = omega + alpha (r_{t-1} - mu)^2 + beta s_{t-1}^2 (alpha 0.08, beta 0.90, omega set so
  that the long-run volatility is sigma): volatility clusters, the mean is as unpredictable as a
  random walk's; the oracle forecast is close_t * exp(mu).
- A volatility level ``V<v>`` after the process (``SYN-RWV4-1``, ``SYN-AR30V1-2``,
  ``SYN-GARCHV3-1``) scales sigma by v / 2: V1 is half the default volatility (0.6% a day), V4
  twice it. Without it, v = 2 (the default, 1.2%).

Every series has ``DAYS`` business days ending on ``END`` and plausible open/high/low/volume
built around the close path (open gaps, intraday ranges, persistent log volume) that carry no
information about the next day's return. ``<n>`` picks an independent seed, so ``SYN-RW-1`` and
``SYN-RW-2`` are different series; the same symbol always gives the same data.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from datetime import date
from functools import cache

import numpy as np
import pandas as pd

from forecaster.errors import UnknownTicker
from forecaster.providers.base import canonicalize, check_range, clip_dates, normalize_ticker

END = "2018-12-31"
DAYS = 4000
MU = 0.0003  # daily log drift (about 7.8% a year)
SIGMA = 0.012  # daily log-return volatility (about 19% a year)
START_PRICE = 100.0

_SYMBOL = re.compile(
    r"SYN-(?:RW|AR(?P<phi>\d{1,2})|(?P<garch>GARCH))(?:V(?P<vol>[1-9]))?-(?P<n>\d{1,6})"
)
GARCH_ALPHA, GARCH_BETA = 0.08, 0.90


@dataclass(frozen=True)
class Process:
    """The generating process of one synthetic symbol."""

    phi: float  # AR(1) coefficient of daily log returns; 0 for the random walk
    seed: int
    mu: float = MU
    sigma: float = SIGMA  # the long-run daily volatility
    garch: bool = False  # GARCH(1,1) volatility (phi 0)


def parse(symbol: str) -> Process:
    """The process behind a synthetic symbol, or UnknownTicker."""
    match = _SYMBOL.fullmatch(symbol)
    if match is None:
        raise UnknownTicker(
            symbol,
            "synthetic symbols are SYN-RW-<n>, SYN-AR<phi*100>-<n> or SYN-GARCH-<n>, with an "
            "optional volatility level V1-V9 before the dash, e.g. SYN-AR30-1, SYN-RWV4-2",
        )
    phi = int(match["phi"]) / 100.0 if match["phi"] is not None else 0.0
    sigma = SIGMA * int(match["vol"]) / 2 if match["vol"] is not None else SIGMA
    return Process(
        phi=phi, seed=zlib.crc32(symbol.encode()), sigma=sigma, garch=match["garch"] is not None
    )


def oracle_log_return(process: Process, last_log_return: np.ndarray) -> np.ndarray:
    """The best forecast of tomorrow's log return given today's (median = mean: symmetric shocks)."""
    return process.mu + process.phi * (np.asarray(last_log_return, dtype="float64") - process.mu)


def _garch_returns(rng: np.random.Generator, n: int, process: Process) -> np.ndarray:
    """GARCH(1,1) log returns with long-run volatility process.sigma, started at it."""
    e = rng.standard_normal(n)
    omega = process.sigma**2 * (1.0 - GARCH_ALPHA - GARCH_BETA)
    variance = process.sigma**2
    returns = np.empty(n)
    for t in range(n):
        returns[t] = process.mu + np.sqrt(variance) * e[t]
        variance = omega + GARCH_ALPHA * (returns[t] - process.mu) ** 2 + GARCH_BETA * variance
    return returns


@cache
def _series(symbol: str) -> pd.DataFrame:
    process = parse(symbol)
    rng = np.random.default_rng(process.seed)
    n = DAYS
    if process.garch:
        returns = _garch_returns(rng, n, process)
    else:
        shocks = rng.standard_normal(n) * process.sigma
        returns = np.empty(n)
        # Start in the stationary distribution so the first days are like the rest.
        returns[0] = process.mu + shocks[0] / np.sqrt(max(1e-12, 1.0 - process.phi**2))
        for t in range(1, n):
            returns[t] = process.mu + process.phi * (returns[t - 1] - process.mu) + shocks[t]
    close = START_PRICE * np.exp(np.cumsum(returns))
    prev_close = np.concatenate([[START_PRICE], close[:-1]])
    # The open splits the day's move at a random point: no information about tomorrow.
    split = rng.uniform(0.0, 0.3, n)
    open_ = prev_close * np.exp(returns * split)
    wick = np.abs(rng.standard_normal((2, n))) * process.sigma * 0.5
    high = np.maximum(open_, close) * np.exp(wick[0])
    low = np.minimum(open_, close) * np.exp(-wick[1])
    log_volume = np.empty(n)
    log_volume[0] = 0.0
    noise = rng.standard_normal(n) * 0.25
    for t in range(1, n):
        log_volume[t] = 0.8 * log_volume[t - 1] + noise[t]
    volume = np.round(1_000_000 * np.exp(log_volume))
    index = pd.bdate_range(end=END, periods=n, name="date")
    frame = pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume},
        index=index,
    )
    return canonicalize(frame)


class SyntheticProvider:
    """Deterministic synthetic daily bars (see the module docstring for the processes)."""

    name = "synthetic"
    adjusted = False

    def fetch(self, ticker: str, start: date | None, end: date | None) -> pd.DataFrame:
        symbol = normalize_ticker(ticker)
        check_range(start, end)
        parse(symbol)  # UnknownTicker before any work
        frame = _series(symbol)
        return clip_dates(frame, start, end)
