"""Walk-forward (rolling-origin, one-step-ahead) evaluation against naive baselines.

At every forecast origin t (the close of day t) each method forecasts close[t+1] from data up to
t only. The model is the one fitted before the evaluation period (no refit inside it); the
baselines are:
- persistence:    close[t+1] = close[t]  ("tomorrow = today")
- drift:          close[t] * exp(mean daily log return over the trailing `drift_lookback` days)
- moving_average: mean of the last `window` closes
Directional accuracy is the share of days with a price move whose sign the method called right;
persistence never calls a direction, so its directional accuracy is None.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np

DRIFT_LOOKBACK = 252


def metrics(actual: np.ndarray, predicted: np.ndarray, last_close: np.ndarray) -> dict[str, Any]:
    actual = np.asarray(actual, dtype="float64")
    predicted = np.asarray(predicted, dtype="float64")
    last_close = np.asarray(last_close, dtype="float64")
    err = predicted - actual
    pred_dir = np.sign(predicted - last_close)
    true_dir = np.sign(actual - last_close)
    called = (pred_dir != 0) & (true_dir != 0)
    da = float(np.mean(pred_dir[called] == true_dir[called])) if called.any() else None
    return {
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mape": float(np.mean(np.abs(err) / np.abs(actual)) * 100.0),
        "directional_accuracy": da,
        "n": len(actual),
    }


def baseline_forecasts(
    close: np.ndarray, origin_index: np.ndarray, window: int, drift_lookback: int = DRIFT_LOOKBACK
) -> dict[str, np.ndarray]:
    """Baseline forecasts of close[t+1] for each origin row t, using close[..t] only."""
    close = np.asarray(close, dtype="float64")
    log_close = np.log(close)
    cum = np.concatenate([[0.0], np.cumsum(close)])
    persistence = close[origin_index]
    lo = np.maximum(origin_index - drift_lookback, 0)
    span = np.maximum(origin_index - lo, 1)
    mean_return = np.where(origin_index > lo, (log_close[origin_index] - log_close[lo]) / span, 0.0)
    drift = close[origin_index] * np.exp(mean_return)
    start = np.maximum(origin_index - window + 1, 0)
    moving_average = (cum[origin_index + 1] - cum[start]) / (origin_index + 1 - start)
    return {"persistence": persistence, "drift": drift, "moving_average": moving_average}


@dataclass
class EvaluationReport:
    start: date  # first target date
    end: date  # last target date
    n: int
    metrics: dict[str, dict[str, Any]]  # method -> {mae, rmse, mape, directional_accuracy, n}
    interval_coverage: float | None = None  # empirical share of actual closes inside the interval
    nominal_coverage: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def mae_ratio(self) -> float:
        base = self.metrics["persistence"]["mae"]
        return self.metrics["model"]["mae"] / base if base > 0 else math.inf

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "n": self.n,
            "metrics": self.metrics,
            "mae_ratio": self.mae_ratio,
            "interval_coverage": self.interval_coverage,
            "nominal_coverage": self.nominal_coverage,
            **self.extra,
        }


def evaluate_forecasts(
    *,
    target_dates: Any,
    actual: np.ndarray,
    last_close: np.ndarray,
    model_forecast: np.ndarray,
    close: np.ndarray,
    origin_index: np.ndarray,
    window: int,
    lower: np.ndarray | None = None,
    upper: np.ndarray | None = None,
    nominal_coverage: float | None = None,
) -> EvaluationReport:
    """Score the model's one-step forecasts and the baselines on exactly the same origins."""
    if len(actual) == 0:
        raise ValueError("nothing to evaluate: the evaluation window is empty")
    results = {"model": metrics(actual, model_forecast, last_close)}
    for name, forecast in baseline_forecasts(close, origin_index, window).items():
        results[name] = metrics(actual, forecast, last_close)
    results["persistence"]["directional_accuracy"] = None  # never calls a direction
    coverage = None
    if lower is not None and upper is not None:
        coverage = float(np.mean((actual >= lower) & (actual <= upper)))
    return EvaluationReport(
        start=target_dates[0].date(),
        end=target_dates[-1].date(),
        n=len(actual),
        metrics=results,
        interval_coverage=coverage,
        nominal_coverage=nominal_coverage,
    )


def conformal_halfwidth(abs_residuals: np.ndarray, coverage: float) -> float:
    """Split-conformal quantile: the ceil((n+1)*coverage)/n empirical quantile of |residuals|."""
    r = np.sort(np.abs(np.asarray(abs_residuals, dtype="float64")))
    n = len(r)
    if n == 0:
        raise ValueError("no residuals to calibrate an interval")
    k = min(n, math.ceil((n + 1) * coverage))
    return float(r[k - 1])
