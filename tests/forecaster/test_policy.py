"""The serving rule: the network only when its backtest earned it, else the best baseline."""

from __future__ import annotations

from typing import Any

import pytest

from forecaster.policy import choose_method


def backtest(
    model: float, persistence: float, drift: float, median: float, p: float | None, n: int = 500
) -> dict[str, Any]:
    return {
        "n_forecasts": n,
        "metrics": {
            "model": {"mae": model},
            "persistence": {"mae": persistence},
            "drift": {"mae": drift},
            "median_return": {"mae": median},
        },
        "dm_best_pvalue": p,
    }


@pytest.mark.parametrize(
    ("figures", "method", "why"),
    [
        # the network beats the best baseline, significantly
        (backtest(0.90, 1.00, 1.01, 1.02, 0.001), "lstm", "beat persistence significantly"),
        # each baseline can be the best one, and then serves
        (backtest(1.10, 1.00, 1.01, 1.02, 0.9), "persistence", "did not beat persistence"),
        (backtest(1.10, 1.02, 1.00, 1.01, 0.9), "drift", "did not beat drift"),
        (backtest(1.10, 1.02, 1.01, 1.00, 0.9), "median_return", "did not beat median_return"),
        # lower MAE but no significance: no skill
        (backtest(0.997, 1.00, 1.01, 1.02, 0.30), "persistence", "not significant"),
        (backtest(0.997, 1.00, 1.01, 1.02, None), "persistence", "not significant"),
        # significant vs persistence is not enough when another baseline is better
        (backtest(0.99, 1.00, 0.98, 1.02, 0.99), "drift", "did not beat drift"),
        # too little evidence, whatever the figures
        (backtest(0.50, 1.00, 1.01, 1.02, 1e-9, n=249), "persistence", "too little evidence"),
        # equal MAE does not beat
        (backtest(1.00, 1.00, 1.01, 1.02, 0.01), "persistence", "did not beat"),
    ],
)
def test_serving_rule(figures: dict[str, Any], method: str, why: str) -> None:
    choice = choose_method(figures, min_forecasts=250, alpha=0.05)
    assert choice.method == method
    assert why in choice.reason
    assert f"{figures['n_forecasts']} backtest forecasts" in choice.reason


def test_alpha_one_means_lower_mae_is_enough() -> None:
    assert choose_method(backtest(0.99, 1.0, 1.1, 1.1, 0.4), 250, 1.0).method == "lstm"
