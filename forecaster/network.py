"""The network and its TensorFlow runtime: the stacked LSTM -> Dense(1) architecture (with its
frozen linear highway), TensorFlow imported lazily and set up once per process, and the per-process
caches that let a worker train and run thousands of networks of one architecture while tracing
each graph once (one compiled trainer, one traced inference function per architecture).
The estimator that uses them is forecaster.model.LSTMForecaster."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from forecaster.params import ModelParams

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

    # Fits share one traced training step and inference per architecture and process (Trainer,
    # Runner); TF warns about "retracing" when another architecture traces: only noise here.
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


HIGHWAY = "highway"


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
class Trainer:
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


_trainers: dict[tuple[Any, ...], Trainer] = {}
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
    return [train_epoch(model, X, y, rng.permutation(len(X)), batch_size) for _ in range(epochs)]


def train_epoch(
    model: Any, X: np.ndarray, y: np.ndarray, order: np.ndarray, batch_size: int
) -> float:
    """One epoch over the rows `order` of (X, y), in that order, as `model.fit(X[order],
    y[order], batch_size, shuffle=False)` would batch them, through the model's compiled train
    step; the epoch's mean training loss."""
    model.reset_metrics()  # train_on_batch reports the running mean since the last reset
    loss = float("nan")
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        loss = float(model.train_on_batch(X[batch], y[batch]))
    return loss


@dataclass
class Runner:
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


_runners: dict[str, Runner] = {}
_RUNNERS_MAX = 16  # architectures per process (one in practice; more only in tests)


def runner_for(model: Any) -> Runner:
    import json

    import keras

    config = dict(model.get_config())
    config.pop("name", None)  # the architecture, not the name (universe members differ by name)
    key = json.dumps(config, sort_keys=True, default=str)
    with _trainers_lock:
        runner = _runners.get(key)
        if runner is None:
            tf = tf_runtime()
            twin = keras.models.clone_model(model)
            spec = tf.TensorSpec(shape=(None, *model.input_shape[1:]), dtype=tf.float32)
            infer = tf.function(lambda x: twin(x, training=False), input_signature=[spec])
            if len(_runners) >= _RUNNERS_MAX:
                _runners.pop(next(iter(_runners)))
            runner = _runners[key] = Runner(twin, infer)
        return runner


def trainer_for(
    window: int, n_features: int, params: ModelParams, *, zero_head: bool | None = None
) -> Trainer:
    """This process's compiled network for this architecture (see Trainer); `zero_head` as in
    build_network (a universe member: no highway, the head at zero)."""
    import keras

    p = params
    key = (window, n_features, p.units, p.l2, p.learning_rate, p.loss, p.seed, p.highway, zero_head)
    with _trainers_lock:
        trainer = _trainers.get(key)
        if trainer is None:
            keras.utils.set_random_seed(p.seed)  # the initial weights every fit starts from
            model = build_network(window, n_features, p, compile=True, zero_head=zero_head)
            model.optimizer.build(model.trainable_variables)
            trainer = _trainers[key] = Trainer(
                model,
                model.get_weights(),
                [np.array(v.numpy()) for v in model.optimizer.variables],
            )
        return trainer
