"""The Keras model and its artifact: estimator contract, determinism, atomic save, fast inference."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from tinymodel import TINY

from forecaster.model import LSTMForecaster, NotFittedError
from forecaster.params import ModelParams
from forecaster.training import TrainingOutcome, train

pytestmark = pytest.mark.slow


def test_predict_before_fit_raises() -> None:
    with pytest.raises(NotFittedError, match="not fitted"):
        LSTMForecaster().predict(np.zeros((1, 7, 5), dtype="float32"))


def test_stacked_lstm_with_dense_head(outcome: TrainingOutcome) -> None:
    network = outcome.bundle.model.model_
    layers = [type(layer).__name__ for layer in network.layers]
    assert layers.count("LSTM") >= 2
    assert type(network.get_layer("head")).__name__ == "Dense"
    # the forecast is the head's output plus the frozen linear highway on the window
    assert layers[-1] == "Add" and not network.get_layer("highway").trainable


def test_training_outcome(outcome: TrainingOutcome, prices: pd.DataFrame) -> None:
    last = prices.index[-1].date()
    assert outcome.trained_through == last  # the served weights saw the last stored close
    assert outcome.n_train == len(prices) - 7  # every window
    assert 1 <= outcome.final_epochs <= TINY.model.epochs
    bt = outcome.backtest
    assert bt["scheme"] == "rolling-origin" and bt["folds"] == 2
    assert bt["n_forecasts"] == 260 and bt["end"] == last.isoformat()
    assert set(bt["metrics"]) == {"model", "persistence", "drift", "median_return"}
    assert bt["mae_ratio"] == pytest.approx(bt["mae"] / bt["persistence_mae"])
    assert bt["best_baseline"] in ("persistence", "drift", "median_return")
    assert 0 <= bt["dm_pvalue"] <= 1 and 0 <= bt["dm_best_pvalue"] <= 1
    assert bt["coverage_n"] == 130 and 0 <= bt["coverage"] <= 1  # second fold only
    assert set(bt["coverage_by_method"]) == {"model", "persistence", "drift", "median_return"}
    assert bt["coverage_by_method"]["model"] == bt["coverage"]
    # a 3-epoch network: the serving rule picks the best baseline unless it beat it
    assert outcome.choice.method in (bt["best_baseline"], "lstm")
    assert "260 backtest forecasts" in outcome.choice.reason


def test_training_is_deterministic(outcome: TrainingOutcome, prices: pd.DataFrame) -> None:
    again = train(prices, TINY, "GOOG")
    for method in ("model", "persistence"):
        a = outcome.backtest["metrics"][method]["mae"]
        b = again.backtest["metrics"][method]["mae"]
        assert f"{a:.3g}" == f"{b:.3g}"


def test_predict_next_interval(outcome: TrainingOutcome, prices: pd.DataFrame) -> None:
    f = outcome.bundle.predict_next(prices)
    assert f.as_of == date(2013, 3, 1)
    assert f.last_close == pytest.approx(806.19)
    assert f.lower <= f.predicted_close <= f.upper
    assert f.coverage == TINY.interval_coverage


def test_served_network_is_centred_on_its_training_data(
    outcome: TrainingOutcome, prices: pd.DataFrame
) -> None:
    from forecaster.windows import make_windows

    ws = make_windows(prices, outcome.bundle.stats)
    residual = outcome.bundle.model.predict(ws.X) - ws.y
    assert abs(float(np.median(residual))) < 1e-3  # the head's bias absorbed the median residual
    assert outcome.bundle.model.get_params()["recenter"] is True


def test_a_reused_trainer_starts_every_fit_where_a_fresh_network_would() -> None:
    """Fits share one compiled network per architecture (forecaster.network.Trainer): whatever
    ran before (other data, a fine-tune, early stopping), a fit gives the same weights."""
    from forecaster import network

    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 7, 5)).astype("float32")
    y = rng.standard_normal(300).astype("float32")
    params = ModelParams(units=(6, 3), epochs=3, batch_size=32, patience=1, seed=11)
    network._trainers.clear()  # the first fit builds the trainer, as a new worker would
    first = LSTMForecaster(params).fit(X, y)
    other = LSTMForecaster(params).fit(X[::-1] * 2, y[::-1], X[:50], y[:50])  # early stopping
    other.fine_tune(X, y, 2)
    again = LSTMForecaster(params).fit(X, y)
    for a, b in zip(first.model_.get_weights(), again.model_.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    # the fitted networks are their own: the trainer's later fits did not change `first`
    assert first.model_ is not again.model_
    np.testing.assert_array_equal(first.predict(X[:5]), again.predict(X[:5]))
