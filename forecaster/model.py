"""The estimator (Keras stacked LSTM with a Dense head, forecaster.network) and the versioned
bundle (model + fitted statistics) that forecasts from prices.

`LSTMForecaster` follows the scikit-learn estimator contract: no logic in __init__, `fit`
returns self, fitted state ends in `_`. Inference never goes through `Model.predict` (large
fixed overhead per call): a `tf.function` over the model call is ~50x faster for one window.
TensorFlow is imported lazily so importing forecaster stays light for the API and CLI.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from forecaster.evaluation import EvaluationReport, evaluate_forecasts
from forecaster.highway import fit_highway
from forecaster.network import (
    HIGHWAY,
    Trainer,
    build_network,
    runner_for,
    tf_runtime,
    train_epochs,
    trainer_for,
)
from forecaster.params import ModelParams
from forecaster.windows import FeatureStats, latest_window, make_windows

log = logging.getLogger(__name__)


# A warm start fine-tunes at a tenth of the training learning rate, the usual fine-tuning
# practice; checked on the tuning series SYN-AR30-2 (bench/warm_start.py), never on a test period.
FINE_TUNE_LR_FACTOR = 0.1


class NotFittedError(RuntimeError):
    pass


class LSTMForecaster:
    """Stacked LSTM (len(units) >= 2 layers) -> Dense(1), predicting the scaled next-day log return."""

    def __init__(self, params: ModelParams | None = None) -> None:
        self.params = params

    # -- building ---------------------------------------------------------------------------

    def _build(self, window: int, n_features: int, *, compile: bool = False) -> Any:
        return build_network(window, n_features, self._params, compile=compile)

    def _trainer(self, window: int, n_features: int) -> Trainer:
        return trainer_for(window, n_features, self._params)

    def _detach(self, trainer: Trainer) -> Any:
        """The fitted weights in a network of their own: the trainer serves the next fit."""
        model = self._build(*trainer.model.input_shape[1:])
        model.set_weights(trainer.model.get_weights())
        return model

    @property
    def _params(self) -> ModelParams:
        return self.params if self.params is not None else ModelParams()

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        X_val: np.ndarray | None = None,
        y_val: np.ndarray | None = None,
        feature_names: Sequence[str] | None = None,
    ) -> LSTMForecaster:
        """Fit from scratch. With validation data, early stopping on it decides the epoch (the
        best epoch's weights are kept); without, exactly `params.epochs` epochs are run.

        With the ridge highway, epoch 0 (the ridge fit alone, the head still at zero) competes
        too: if no epoch beats its validation loss the LSTM adds nothing (`best_epoch_` 0), and
        `params.epochs` 0 fits the ridge only."""
        import keras

        p = self._params
        if len(p.units) < 2:
            raise ValueError("a stacked LSTM needs at least two layers")
        tf_runtime().config.experimental.enable_op_determinism()
        trainer = self._trainer(X.shape[1], X.shape[2])
        validated = X_val is not None and y_val is not None and len(X_val) > 0
        callbacks = (
            [
                keras.callbacks.EarlyStopping(
                    monitor="val_loss", patience=p.patience, restore_best_weights=True
                )
            ]
            if validated
            else []
        )
        started = time.perf_counter()
        highway = fit_highway(X, y, feature_names, self._params.highway)

        def start() -> None:  # the seeded initial network, with this fit's highway
            trainer.reset()
            if highway is not None:
                trainer.model.get_layer(HIGHWAY).set_weights(highway.weights())

        with trainer.lock:
            start()
            keras.utils.set_random_seed(p.seed)  # Python, NumPy and TF together: the shuffles
            untrained = (
                float(trainer.model.evaluate(X_val, y_val, batch_size=1024, verbose=0))
                if validated and highway is not None
                else None
            )
            history = (
                trainer.model.fit(
                    X,
                    y,
                    validation_data=(X_val, y_val) if validated else None,
                    epochs=p.epochs,
                    batch_size=p.batch_size,
                    shuffle=True,
                    callbacks=callbacks,
                    verbose=0,
                ).history
                if p.epochs > 0
                else {"loss": []}
            )
            self.history_ = {k: [float(v) for v in vals] for k, vals in history.items()}
            self.epochs_run_ = len(self.history_["loss"])
            self.best_epoch_ = self.epochs_run_
            if validated and self.epochs_run_:
                self.best_epoch_ = int(np.argmin(self.history_["val_loss"])) + 1
                if untrained is not None and untrained <= min(self.history_["val_loss"]):
                    start()  # no epoch beat the ridge fit alone: keep that
                    self.best_epoch_ = 0
            model = self._detach(trainer)
        self.train_seconds_ = time.perf_counter() - started
        self.model_ = model
        self.highway_alpha_ = highway.alpha if highway is not None else None
        self._compile_inference()
        self._recenter(X, y)
        return self

    def _recenter(self, X: np.ndarray, y: np.ndarray) -> None:
        """Fit on the training windows only: the median residual becomes the bias correction."""
        self.recentered_ = 0.0
        if not self._params.recenter:
            return
        shift = float(np.median(self.predict(X) - np.asarray(y, dtype="float64")))
        head = self.model_.get_layer("head")
        kernel, bias = head.get_weights()
        head.set_weights([kernel, bias - np.float32(shift)])
        self.recentered_ = shift

    def fine_tune(
        self, X: np.ndarray, y: np.ndarray, epochs: int, lr_factor: float = FINE_TUNE_LR_FACTOR
    ) -> LSTMForecaster:
        """Continue training the fitted network for `epochs` epochs on (X, y), all of them (a
        quiet night's warm start: the same windows plus the new days), at `lr_factor` times the
        learning rate: a fresh Adam at the full rate takes steps of about the learning rate in
        every weight, which shakes a converged network as much as a refit would. The head is
        re-centred on the new training residuals, as after `fit`."""

        if not hasattr(self, "model_"):
            raise NotFittedError("fine_tune needs a fitted or loaded network")
        p = self._params
        tf_runtime().config.experimental.enable_op_determinism()
        trainer = self._trainer(*self.model_.input_shape[1:])
        started = time.perf_counter()
        with trainer.lock:
            trainer.reset(self.model_.get_weights())  # a fresh optimizer, these weights
            trainer.model.optimizer.learning_rate = p.learning_rate * lr_factor  # reset restores it
            # No keras.utils.set_random_seed here: it makes TensorFlow retrace the train step
            # (0.55 s, more than the fine-tune); the network has no random op, and the shuffles
            # are seeded by train_epochs itself.
            losses = train_epochs(trainer.model, X, y, epochs, p.batch_size, p.seed)
            self.model_ = self._detach(trainer)
        self.train_seconds_ = time.perf_counter() - started
        self.history_ = {"loss": losses}
        self.epochs_run_ = self.best_epoch_ = len(self.history_["loss"])
        self._compile_inference()
        self._recenter(X, y)
        return self

    def _compile_inference(self) -> None:
        self._run = runner_for(self.model_)  # shared: see network.Runner

    def predict(self, X: np.ndarray) -> np.ndarray:
        if not hasattr(self, "model_"):
            raise NotFittedError("this LSTMForecaster is not fitted yet: call fit() or load()")
        return self._run(self.model_.get_weights(), np.asarray(X, dtype="float32"))

    def get_params(self) -> dict[str, Any]:
        return self._params.to_dict()

    @classmethod
    def from_keras(cls, model: Any, params: dict[str, Any]) -> LSTMForecaster:
        est = cls(ModelParams.from_dict(params))
        est.model_ = model
        est._compile_inference()
        return est


@dataclass(frozen=True)
class NextDayForecast:
    as_of: date
    last_close: float
    predicted_close: float
    lower: float
    upper: float
    coverage: float
    predicted_log_return: float


@dataclass(frozen=True)
class SharedPart:
    """The part of a version's network that other versions share (universe scope: the ensemble
    of one fit), packed once as a `.keras` file and stored once (forecaster.artifacts)."""

    network: bytes
    sha256: str


@dataclass
class ForecastBundle:
    """What a model version is: the network, the statistics it was fitted with, and its interval.
    `shared`: the part of the network stored once for every version that uses it (its own part,
    the highway, is stored with the version)."""

    model: LSTMForecaster
    stats: FeatureStats
    interval_halfwidth: float  # log-return units: backtest scale x volatility on the last day
    coverage: float  # nominal coverage of that interval
    config: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    shared: SharedPart | None = None

    def predict_log_returns(self, X: np.ndarray) -> np.ndarray:
        return self.model.predict(X).astype("float64") * self.stats.return_std

    def predict_next(self, prices: pd.DataFrame) -> NextDayForecast:
        X, last_close, as_of = latest_window(prices, self.stats)
        lr = float(self.predict_log_returns(X)[0])
        q = self.interval_halfwidth
        return NextDayForecast(
            as_of=as_of,
            last_close=last_close,
            predicted_close=last_close * float(np.exp(lr)),
            lower=last_close * float(np.exp(lr - q)),
            upper=last_close * float(np.exp(lr + q)),
            coverage=self.coverage,
            predicted_log_return=lr,
        )

    def evaluate(
        self, prices: pd.DataFrame, test_start: date, test_end: date | None = None
    ) -> EvaluationReport:
        """Walk-forward one-step forecasts for every target date in [test_start, test_end]."""
        ws = make_windows(prices, self.stats)
        mask = ws.target_dates >= pd.Timestamp(test_start)
        if test_end is not None:
            mask &= ws.target_dates <= pd.Timestamp(test_end)
        idx = np.flatnonzero(mask)
        if len(idx) == 0:
            raise ValueError(f"no forecast origins on or after {test_start}")
        part = ws.part(int(idx[0]), int(idx[-1]) + 1)
        lr = self.predict_log_returns(part.X)
        q = self.interval_halfwidth
        return evaluate_forecasts(
            target_dates=part.target_dates,
            actual=part.next_close,
            last_close=part.last_close,
            model_forecast=part.last_close * np.exp(lr),
            close=prices["close"].to_numpy(dtype="float64"),
            origin_index=part.origin_index,
            window=self.stats.window,
            lower=part.last_close * np.exp(lr - q),
            upper=part.last_close * np.exp(lr + q),
            nominal_coverage=self.coverage,
        )
