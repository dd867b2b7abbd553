"""Which method serves a ticker's forecast: the network only when its backtest earned it.

Pure: it reads the backtest summary (forecaster.backtest) and nothing else.

- Too little evidence (fewer than `min_forecasts` backtest forecasts): the best baseline.
- The network serves only if its backtest MAE is lower than the best simple baseline's
  (persistence, drift, constant median return) on the same days AND a one-sided
  Diebold-Mariano test says so at level `alpha`. A ratio of 0.997 with no significance is not
  skill: daily returns of real indices are close to unpredictable.
- Otherwise the best baseline serves. The network's own figures stay visible beside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

METHODS = ("lstm", "persistence", "drift", "median_return")
BASELINES = ("persistence", "drift", "median_return")


def backtest_key(method: str) -> str:
    """The backtest calls the network "model"; serving methods call it "lstm"."""
    return "model" if method == "lstm" else method


@dataclass(frozen=True)
class Choice:
    method: str  # one of METHODS
    reason: str


def choose_method(backtest: dict[str, Any], min_forecasts: int, alpha: float) -> Choice:
    n = int(backtest.get("n_forecasts") or 0)
    maes = {b: backtest["metrics"][b]["mae"] for b in BASELINES if b in backtest["metrics"]}
    best = min(BASELINES, key=lambda b: maes.get(b, math.inf))
    best_mae = maes[best]
    mae = backtest["metrics"]["model"]["mae"]
    ratio = mae / best_mae if best_mae > 0 else math.inf
    p = backtest.get("dm_best_pvalue")
    shown_p = "n/a" if p is None else f"{p:.3g}"
    figures = f"network MAE {ratio:.4f}x {best}, DM p={shown_p}, {n} backtest forecasts"
    if n < min_forecasts:
        return Choice(
            best, f"too little evidence for the network ({figures}; need {min_forecasts})"
        )
    if not (math.isfinite(mae) and mae < best_mae):
        return Choice(best, f"the network did not beat {best} ({figures})")
    if p is None or not p < alpha:
        return Choice(best, f"the network's edge over {best} is not significant ({figures})")
    return Choice("lstm", f"the network beat {best} significantly ({figures})")
