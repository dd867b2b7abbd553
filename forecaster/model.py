"""Keras stacked LSTM with a Dense head, and the versioned artifact (model + fitted statistics).

`LSTMForecaster` follows the scikit-learn estimator contract: no logic in __init__, `fit`
returns self, fitted state ends in `_`. Inference never goes through `Model.predict` (large
fixed overhead per call): a `tf.function` over the model call is ~50x faster for one window.
TensorFlow is imported lazily so importing forecaster stays light for the API and CLI.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from forecaster.evaluation import EvaluationReport, evaluate_forecasts
from forecaster.highway import fit_highway
from forecaster.params import ModelParams
from forecaster.windows import FeatureStats, latest_window, make_windows

log = logging.getLogger(__name__)


class _Runtime:
    use_gpu = False  # Settings.use_gpu, set by the entry point (use_gpu()) before TF is imported


def use_gpu(enabled: bool) -> None:
    """Let TensorFlow see GPUs (STOCKCAST_USE_GPU); must be called before it is imported."""
    _Runtime.use_gpu = enabled


def tf_runtime() -> Any:
    # Level 3 hides TensorFlow's C++ warnings/errors (e.g. CUDA probing). Since TF 2.19 a few
    # import-time INFO lines print regardless (tensorflow/tensorflow#100442); harmless.
    # (Both variables are set for TensorFlow itself, never read by stockcast.)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if not _Runtime.use_gpu:
        # These networks are tiny: the CPU is faster than a GPU round trip, and hiding GPUs keeps
        # CUDA probing noise out of CLI output on machines without one.
        os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    import tensorflow as tf

    # Each fit (one per backtest fold) compiles its own inference function; TF then warns about
    # "retracing", which is expected here and only noise in the pipeline's output.
    tf.get_logger().setLevel("ERROR")
    return tf


def warm_up(threads: int | None = None) -> None:
    """Import TensorFlow now (a worker process pays it once, not per ticker) and, with `threads`,
    cap its thread pools so that several workers on one machine share the cores instead of each
    starting one thread per core. Must run before the process builds any model."""
    tf = tf_runtime()
    if threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(min(2, threads))
        except RuntimeError:  # TensorFlow already initialized in this process: keep its pools
            log.warning("TensorFlow threads already configured", extra={"threads": threads})


# A warm start fine-tunes at a tenth of the training learning rate, the usual fine-tuning
# practice; checked on the tuning series SYN-AR30-2 (bench/warm_start.py), never on a test period.
FINE_TUNE_LR_FACTOR = 0.1


HIGHWAY = "highway"


class NotFittedError(RuntimeError):
    pass


def build_network(
    window: int,
    n_features: int,
    params: ModelParams,
    *,
    compile: bool = False,
    zero_head: bool | None = None,
    name: str = "stockcast_lstm",
) -> Any:
    """The stacked LSTM -> Dense(1) head (plus, with params.highway, a frozen linear highway on
    the flattened window, added to the head's output). `zero_head` (default: with a highway)
    starts the head at zero, so that before the first epoch the network forecasts exactly its
    linear part, and early stopping may keep that (best epoch 0)."""
    tf_runtime()
    import keras

    p = params
    inputs = keras.Input(shape=(window, n_features), name="window")
    x = inputs

    def reg() -> Any:
        return keras.regularizers.L2(p.l2) if p.l2 > 0 else None

    for i, size in enumerate(p.units):
        last = i == len(p.units) - 1
        x = keras.layers.LSTM(
            size,
            return_sequences=not last,
            name=f"lstm_{i}",
            kernel_regularizer=reg(),
            recurrent_regularizer=reg(),
        )(x)
    zero = p.highway != "none" if zero_head is None else zero_head
    outputs = keras.layers.Dense(
        1,
        name="head",
        kernel_regularizer=reg(),
        kernel_initializer="zeros" if zero else "glorot_uniform",
    )(x)
    if p.highway != "none":
        linear = keras.layers.Dense(1, name=HIGHWAY, trainable=False)(
            keras.layers.Flatten(name="flat_window")(inputs)
        )
        outputs = keras.layers.Add(name="forecast")([outputs, linear])
    model = keras.Model(inputs, outputs, name=name)
    if compile:
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=p.learning_rate), loss=p.loss)
    return model


@dataclass
class _Trainer:
    """One compiled network per architecture and process, reused by every fit.

    Keras traces a new model's training step into a TensorFlow graph on its first `fit`: about
    2.4 s for these LSTMs on 2 cores, more than the fit itself on a quiet night. A worker trains
    hundreds of networks of the same architecture, so it traces once: each fit starts by putting
    back the seeded initial weights (or the weights to fine-tune) and the optimizer's initial
    state, which is exactly where a freshly built network would start.
    """

    model: Any
    initial_weights: list[np.ndarray]
    optimizer_state: list[np.ndarray]
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self, weights: list[np.ndarray] | None = None) -> None:
        self.model.set_weights(self.initial_weights if weights is None else weights)
        for variable, value in zip(
            self.model.optimizer.variables, self.optimizer_state, strict=True
        ):
            variable.assign(value)


_trainers: dict[tuple[Any, ...], _Trainer] = {}
_trainers_lock = threading.Lock()


def train_epochs(
    model: Any, X: np.ndarray, y: np.ndarray, epochs: int, batch_size: int, seed: int
) -> list[float]:
    """What `model.fit(X, y, epochs, batch_size, shuffle=True)` does, without its per-call
    set-up (data adapter, callbacks, epoch iterators): seeded shuffled mini-batches through the
    model's compiled train step. For a quiet night's few epochs that set-up was 80% of the
    fine-tune (0.76 s against 0.15 s for 3 epochs of ~1,000 windows). Returns each epoch's
    mean training loss, as `fit`'s history does."""
    X = np.asarray(X, dtype="float32")
    y = np.asarray(y, dtype="float32")
    rng = np.random.default_rng(seed)
    losses = []
    for _ in range(epochs):
        order = rng.permutation(len(X))
        model.reset_metrics()  # train_on_batch reports the running mean since the last reset
        loss = float("nan")
        for start in range(0, len(X), batch_size):
            batch = order[start : start + batch_size]
            loss = float(model.train_on_batch(X[batch], y[batch]))
        losses.append(loss)
    return losses


@dataclass
class _Runner:
    """One traced inference function per architecture and process, shared by every network of
    that architecture: a forecast puts the network's weights in and calls it.

    Tracing a network's call into a graph costs about 0.1-0.2 s, as much as a quiet night's
    fine-tune; a worker forecasts thousands of networks of one architecture a night."""

    model: Any
    infer: Any
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, weights: list[np.ndarray], X: np.ndarray) -> np.ndarray:
        with self.lock:
            self.model.set_weights(weights)
            return np.asarray(self.infer(X)).reshape(-1)


_runners: dict[str, _Runner] = {}
_RUNNERS_MAX = 16  # architectures per process (one in practice; more only in tests)


def _runner_for(model: Any) -> _Runner:
    import json

    import keras

    key = json.dumps(model.get_config(), sort_keys=True, default=str)
    with _trainers_lock:
        runner = _runners.get(key)
        if runner is None:
            tf = tf_runtime()
            twin = keras.models.clone_model(model)
            spec = tf.TensorSpec(shape=(None, *model.input_shape[1:]), dtype=tf.float32)
            infer = tf.function(lambda x: twin(x, training=False), input_signature=[spec])
            if len(_runners) >= _RUNNERS_MAX:
                _runners.pop(next(iter(_runners)))
            runner = _runners[key] = _Runner(twin, infer)
        return runner


class LSTMForecaster:
    """Stacked LSTM (len(units) >= 2 layers) -> Dense(1), predicting the scaled next-day log return."""

    def __init__(self, params: ModelParams | None = None) -> None:
        self.params = params

    # -- building ---------------------------------------------------------------------------

    def _build(self, window: int, n_features: int, *, compile: bool = False) -> Any:
        return build_network(window, n_features, self._params, compile=compile)

    def _trainer(self, window: int, n_features: int) -> _Trainer:
        """This process's compiled network for this architecture (see _Trainer)."""
        import keras

        p = self._params
        key = (window, n_features, p.units, p.l2, p.learning_rate, p.loss, p.seed, p.highway)
        with _trainers_lock:
            trainer = _trainers.get(key)
            if trainer is None:
                keras.utils.set_random_seed(p.seed)  # the initial weights every fit starts from
                model = self._build(window, n_features, compile=True)
                model.optimizer.build(model.trainable_variables)
                trainer = _trainers[key] = _Trainer(
                    model,
                    model.get_weights(),
                    [np.array(v.numpy()) for v in model.optimizer.variables],
                )
            return trainer

    def _detach(self, trainer: _Trainer) -> Any:
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
        self._run = _runner_for(self.model_)  # shared: see _Runner

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


@dataclass
class ForecastBundle:
    """What a model version is: the network, the statistics it was fitted with, and its interval."""

    model: LSTMForecaster
    stats: FeatureStats
    interval_halfwidth: float  # log-return units: backtest scale x volatility on the last day
    coverage: float  # nominal coverage of that interval
    config: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

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
