"""The ridge highway beside the LSTM: closed-form fit, penalty by GCV, frozen while the LSTM trains."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from forecaster import artifacts
from forecaster.highway import RIDGE_ALPHAS, fit_highway, ridge_highway
from forecaster.model import ForecastBundle, LSTMForecaster
from forecaster.network import HIGHWAY
from forecaster.params import ModelParams
from forecaster.windows import FeatureStats


def _ar_windows(phi: float, n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Windows of unit-scale noise whose target is phi x the last close feature plus noise."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 7, 5)).astype("float32")
    y = (phi * X[:, -1, 3] + rng.standard_normal(n)).astype("float32")
    return X, y


def test_ridge_recovers_a_linear_coefficient() -> None:
    X, y = _ar_windows(0.3)
    fit = ridge_highway(X, y)
    coef = fit.coef.reshape(7, 5)
    assert coef[-1, 3] == pytest.approx(0.3, abs=0.05)
    others = np.delete(coef.ravel(), 6 * 5 + 3)
    assert np.max(np.abs(others)) < 0.08
    assert fit.alpha in RIDGE_ALPHAS


def test_gcv_shrinks_hard_when_there_is_nothing_to_learn() -> None:
    X, y = _ar_windows(0.0)
    noise = ridge_highway(X, y)
    signal = ridge_highway(*_ar_windows(0.3))
    assert noise.alpha > signal.alpha
    assert np.max(np.abs(noise.coef)) < 0.03


@pytest.mark.slow
def test_highway_is_frozen_while_the_lstm_trains_and_survives_the_artifact() -> None:
    X, y = _ar_windows(0.3, n=600)
    params = ModelParams(units=(8, 4), epochs=3, batch_size=64, recenter=False, highway="ridge")
    model = LSTMForecaster(params).fit(X[:500], y[:500], X[500:], y[500:])
    kernel, bias = model.model_.get_layer(HIGHWAY).get_weights()
    expected = ridge_highway(X[:500], y[:500])
    np.testing.assert_allclose(kernel.ravel(), expected.coef, rtol=1e-5, atol=1e-6)
    assert float(bias[0]) == pytest.approx(expected.intercept, abs=1e-6)
    assert model.highway_alpha_ == expected.alpha
    # the LSTM path still ends in the Dense head; the forecast is head + highway
    assert type(model.model_.get_layer("head")).__name__ == "Dense"
    # a warm start fine-tunes the LSTM and leaves the highway as the cold fit left it
    tuned = LSTMForecaster(params)
    tuned.model_ = model.model_
    tuned.fine_tune(X, y, epochs=1)
    np.testing.assert_array_equal(tuned.model_.get_layer(HIGHWAY).get_weights()[0], kernel)

    stats = FeatureStats(
        7, ("open", "high", "low", "volume", "close"), 0.01, 1.0, date(2018, 12, 31)
    )
    bundle = ForecastBundle(model=model, stats=stats, interval_halfwidth=0.02, coverage=0.9)
    loaded = artifacts.unpack(artifacts.pack(bundle))
    np.testing.assert_allclose(loaded.model.predict(X[:50]), model.predict(X[:50]), rtol=1e-6)


def test_artifacts_from_before_the_highway_load_without_one() -> None:
    assert ModelParams.from_dict({"units": [8, 4]}).highway == "none"
    assert ModelParams().highway == "ar"


def test_the_ar_highway_reads_only_the_close_history() -> None:
    X, y = _ar_windows(0.3)
    names = ("open", "high", "low", "volume", "close")
    ar = fit_highway(X, y, names, "ar")
    assert ar is not None
    coef = ar.coef.reshape(7, 5)
    assert not coef[:, :4].any()  # open, high, low, volume: exactly zero
    assert np.max(np.abs(coef[:, 4])) < 0.05  # the close column carries no signal here
    # without a close feature it falls back to every input
    every = fit_highway(X, y, names[:4], "ar")
    assert every is not None and every.coef.reshape(7, 5)[-1, 3] == pytest.approx(0.3, abs=0.05)
    assert fit_highway(X, y, names, "none") is None


@pytest.mark.slow
def test_zero_epochs_is_the_ridge_fit_alone() -> None:
    X, y = _ar_windows(0.3, n=400)
    params = ModelParams(units=(8, 4), epochs=0, recenter=False, highway="ridge")
    model = LSTMForecaster(params).fit(X, y)
    ridge = ridge_highway(X, y)
    expected = X.reshape(len(X), -1).astype("float64") @ ridge.coef + ridge.intercept
    np.testing.assert_allclose(model.predict(X), expected, rtol=1e-4, atol=1e-4)
    assert model.epochs_run_ == 0 and model.best_epoch_ == 0


@pytest.mark.slow
def test_early_stopping_keeps_the_ridge_fit_when_no_epoch_beats_it() -> None:
    X, y = _ar_windows(0.3, n=600)
    # a learning rate this large wrecks every epoch: none beats the untrained (ridge-only) network
    params = ModelParams(
        units=(8, 4), epochs=3, learning_rate=50.0, patience=1, recenter=False, highway="ridge"
    )
    model = LSTMForecaster(params).fit(X[:500], y[:500], X[500:], y[500:])
    assert model.best_epoch_ == 0 and model.epochs_run_ >= 1
    ridge = ridge_highway(X[:500], y[:500])
    expected = X[500:].reshape(100, -1).astype("float64") @ ridge.coef + ridge.intercept
    np.testing.assert_allclose(model.predict(X[500:]), expected, rtol=1e-4, atol=1e-4)
