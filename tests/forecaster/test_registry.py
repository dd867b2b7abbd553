"""Promotion rules, the one-champion invariant, and crash safety of the model registry."""

from __future__ import annotations

from typing import Any

import pytest

from forecaster.registry import decide
from forecaster.settings import Settings


def backtest(mae: float, persistence: float, n: int = 500) -> dict[str, Any]:
    return {"mae": mae, "persistence_mae": persistence, "n_forecasts": n}


def test_a_version_with_usable_backtest_figures_is_promoted() -> None:
    # Even one that loses to persistence: it is the freshest, and the serving rule
    # (forecaster.policy) decides whether its network or a baseline produces forecasts.
    for figures in (backtest(10.0, 10.1), backtest(12.0, 10.0)):
        d = decide(figures)
        assert d.promoted and d.reason is None


@pytest.mark.parametrize(
    ("figures", "why"),
    [
        (backtest(float("nan"), 10.0), "not finite"),
        (backtest(float("inf"), 10.0), "not finite"),
        (backtest(1.0, 0.0), "constant"),
        (backtest(1.0, 1.0, n=0), "no forecasts"),
    ],
)
def test_unusable_backtests_are_rejected_with_reason(figures: dict[str, Any], why: str) -> None:
    d = decide(figures)
    assert not d.promoted and why in (d.reason or "")


def test_a_training_without_usable_figures_stores_nothing(tmp_path: Any) -> None:
    from types import SimpleNamespace

    from forecaster.errors import ModelRejected
    from forecaster.registry import register

    settings = Settings().replace(data_dir=tmp_path)
    outcome = SimpleNamespace(
        backtest={"mae": float("nan"), "persistence_mae": 1.0, "n_forecasts": 9}
    )
    with pytest.raises(ModelRejected, match=r"GOOG: model not stored: .*not finite"):
        register(None, settings, SimpleNamespace(id=1, symbol="GOOG"), outcome)  # type: ignore[arg-type]
    # (a None session: nothing was read or written, the artifact not even packed)
