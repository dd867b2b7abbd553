"""One network for a whole universe of tickers (model scope `universe`): a global model.

Forecasting practice for many related series (ES-RNN, the M4 winner; DeepAR; Qlib's market-wide
LSTM): one network learns from the windows of every series, while each series keeps its own
scale and its own level parameters. Here:

- **Scale per ticker.** A ticker's inputs and target are already in units of its own training
  return std (forecaster.windows.fit_stats, training rows only), so a utility and a chip stock
  give the network windows of the same size.
- **A linear highway per ticker.** Each ticker's AR highway (ridge on its close history,
  forecaster.highway) is fitted in closed form on that ticker's training windows only; the
  shared network learns what every ticker's linear part leaves (its residual). A ticker the
  network never saw is forecast as soon as its highway is fitted (milliseconds): nothing in the
  network belongs to a ticker.
- **Balanced epochs.** Each epoch draws a seeded sample of at most `per_ticker` training windows
  from every ticker, so a 20-year history does not drown a 3-year one and an epoch costs the same
  at 50 or 5,000 tickers. Early stopping watches the pooled validation windows (the newest share
  of each ticker's fit windows); epoch 0 (the highways alone, the network's head at zero)
  competes too, so a universe with nothing non-linear to learn keeps the highways.
- **An ensemble of seeds.** The network's forecast is the mean of `members` networks that differ
  only in their seed: near a decision threshold one initialisation must not decide what serves.
- **Per-ticker centring.** After the fit, each ticker's median training residual is taken out
  (the pooled version of LSTMForecaster's re-centring), fitted on its training windows only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from forecaster.highway import RidgeFit, fit_highway
from forecaster.network import build_network, runner_for, tf_runtime, train_epoch, trainer_for
from forecaster.params import ModelParams

log = logging.getLogger(__name__)

# Pooled fits see thousands of windows per step: a larger batch than a single ticker's keeps an
# epoch's cost down without changing what is learnt much (chosen for cost, on tuning data).
POOLED_BATCH = 256
PER_TICKER = 128  # training windows per ticker per epoch (seeded draw)
VAL_PER_TICKER = 64  # validation windows per ticker (a seeded, fixed subset)


@dataclass(frozen=True)
class Panel:
    """One ticker's windows for a pooled fit (scaled by its own statistics), oldest first."""

    symbol: str
    X: np.ndarray
    y: np.ndarray
    X_val: np.ndarray | None = None
    y_val: np.ndarray | None = None


@dataclass
class MemberFit:
    seed: int
    best_epoch: int
    epochs_run: int
    history: list[float] = field(default_factory=list)  # validation MAE per epoch (0: highways)


class UniverseForecaster:
    """The shared network(s) plus every ticker's highway and centring. Estimator contract: `fit`
    returns self, fitted state ends in `_`, `predict` before `fit` raises."""

    def __init__(
        self,
        params: ModelParams | None = None,
        members: int = 3,
        per_ticker: int = PER_TICKER,
        feature_names: Sequence[str] = (),
    ) -> None:
        self.params = params
        self.members = members
        self.per_ticker = per_ticker
        self.feature_names = tuple(feature_names)

    @property
    def _params(self) -> ModelParams:
        return self.params if self.params is not None else ModelParams()

    # -- per-ticker parts ----------------------------------------------------------------------

    def _highway(self, X: np.ndarray, y: np.ndarray) -> RidgeFit | None:
        return fit_highway(X, y, self.feature_names, self._params.highway)

    def adopt(self, symbol: str, X: np.ndarray, y: np.ndarray) -> UniverseForecaster:
        """Fit a ticker's own parts (highway, centring) on its training windows: a ticker the
        network never saw is forecast from then on."""
        self.highways_[symbol] = self._highway(X, y)
        self._centre(symbol, X, y)
        return self

    def _centre(self, symbol: str, X: np.ndarray, y: np.ndarray) -> None:
        """The ticker's median training residual, taken out of its forecasts (re-centring)."""
        raw = self._linear(symbol, X) + self._network(X)
        self.shifts_[symbol] = float(np.median(raw - y)) if self._params.recenter else 0.0

    def _linear(self, symbol: str, X: np.ndarray) -> np.ndarray:
        highway = self.highways_.get(symbol)
        if highway is None:
            return np.zeros(len(X))
        return highway.predict(X)

    # -- the shared network --------------------------------------------------------------------

    def fit(
        self,
        panels: Sequence[Panel],
        epochs: int | None = None,
        *,
        start: Sequence[list[np.ndarray]] | None = None,
        lr_factor: float = 1.0,
    ) -> UniverseForecaster:
        """Fit every ticker's highway, then the shared network(s) on the residuals.

        With validation windows, early stopping decides each member's epoch; without (the served
        fit), exactly `epochs` (default params.epochs) epochs are run. `start` (one weight list
        per member) warm-starts the members instead of the seeded initial weights, at
        `lr_factor` times the learning rate (a quiet night's fine-tune).
        """
        p = self._params
        started = time.perf_counter()
        self.highways_: dict[str, RidgeFit | None] = {}
        self.shifts_: dict[str, float] = {}
        self.networks_: list[Any] = []
        self.fits_: list[MemberFit] = []
        X_parts, r_parts, Xv_parts, rv_parts, sizes = [], [], [], [], []
        for panel in panels:
            highway = self._highway(panel.X, panel.y)
            self.highways_[panel.symbol] = highway
            X_parts.append(panel.X)
            r_parts.append(panel.y - self._linear(panel.symbol, panel.X))
            sizes.append(len(panel.X))
            if panel.X_val is not None and panel.y_val is not None and len(panel.X_val):
                Xv_parts.append(panel.X_val)
                rv_parts.append(panel.y_val - self._linear(panel.symbol, panel.X_val))
        X = np.concatenate(X_parts).astype("float32")
        r = np.concatenate(r_parts).astype("float32")
        validated = bool(Xv_parts)
        Xv = np.concatenate(Xv_parts).astype("float32") if validated else None
        rv = np.concatenate(rv_parts).astype("float32") if validated else None
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype("int64")
        if start is not None and len(start) != self.members:
            raise ValueError(f"{len(start)} warm-start networks for {self.members} members")
        for k in range(self.members):
            network, fit = self._fit_member(
                p.seed + 1000 * k,
                X,
                r,
                offsets,
                np.asarray(sizes),
                Xv,
                rv,
                epochs,
                start[k] if start is not None else None,
                lr_factor,
            )
            self.networks_.append(network)
            self.fits_.append(fit)
        self._compile()
        for panel in panels:  # per-ticker centring on its training windows
            self._centre(panel.symbol, panel.X, panel.y)
        self.train_seconds_ = time.perf_counter() - started
        self.n_windows_ = len(X)
        self.n_tickers_ = len(panels)
        return self

    def _fit_member(
        self,
        seed: int,
        X: np.ndarray,
        r: np.ndarray,
        offsets: np.ndarray,
        sizes: np.ndarray,
        Xv: np.ndarray | None,
        rv: np.ndarray | None,
        epochs: int | None,
        weights: list[np.ndarray] | None = None,
        lr_factor: float = 1.0,
    ) -> tuple[Any, MemberFit]:
        """One member: trained on this process's compiled network for its architecture and seed
        (network.Trainer: traced once, reset to the seeded initial weights, or to `weights`, and
        a fresh optimizer), then detached into a network of its own."""
        # the highways are per ticker (outside): the network itself has none
        p = self._params.replace(highway="none", seed=seed)
        tf_runtime().config.experimental.enable_op_determinism()
        rng = np.random.default_rng(seed)
        if Xv is not None and rv is not None and len(Xv) > VAL_PER_TICKER * len(sizes):
            keep = np.sort(rng.choice(len(Xv), VAL_PER_TICKER * len(sizes), replace=False))
            Xv, rv = Xv[keep], rv[keep]
        n_epochs = p.epochs if epochs is None else epochs
        history: list[float] = []
        trainer = trainer_for(X.shape[1], X.shape[2], p, zero_head=True)
        with trainer.lock:
            trainer.reset(weights)
            model = trainer.model
            model.optimizer.learning_rate = p.learning_rate * lr_factor  # reset restores it
            best, best_epoch, best_weights, waited = np.inf, 0, model.get_weights(), 0
            if Xv is not None and rv is not None:
                best = float(np.mean(np.abs(rv)))  # epoch 0: the head at zero, the highways alone
                history.append(best)
            epochs_run = 0
            for epoch in range(1, n_epochs + 1):
                take = np.minimum(sizes, self.per_ticker)
                idx = np.concatenate(
                    [
                        o + rng.choice(n, t, replace=False)
                        for o, n, t in zip(offsets, sizes, take, strict=True)
                    ]
                )
                rng.shuffle(idx)
                train_epoch(model, X, r, idx, POOLED_BATCH)
                epochs_run = epoch
                if Xv is None or rv is None:
                    best_epoch = epoch
                    continue
                loss = float(np.mean(np.abs(_predict(model, Xv) - rv)))
                history.append(loss)
                if loss < best:
                    best, best_epoch, best_weights, waited = loss, epoch, model.get_weights(), 0
                else:
                    waited += 1
                    if waited >= p.patience:
                        break
            fitted = best_weights if Xv is not None else model.get_weights()
        network = build_network(
            X.shape[1], X.shape[2], p, zero_head=True, name=f"member_{len(self.networks_)}"
        )
        network.set_weights(fitted)
        return network, MemberFit(seed, best_epoch, epochs_run, history)

    def _compile(self) -> None:
        """Each member's forecasts through the process's traced inference function for its
        architecture (network.Runner), not one traced per fit."""
        self._members = [(runner_for(n), n) for n in self.networks_]

    def _network(self, X: np.ndarray) -> np.ndarray:
        """The ensemble's mean residual forecast (scaled units)."""
        return np.mean(self.member_outputs(X), axis=0)

    def member_outputs(self, X: np.ndarray) -> np.ndarray:
        """(members, n): each member network's residual forecast."""
        if not hasattr(self, "networks_"):
            raise RuntimeError("this UniverseForecaster is not fitted yet: call fit()")
        x = np.asarray(X, dtype="float32")
        return np.stack(
            [run(network.get_weights(), x).astype("float64") for run, network in self._members]
        )

    def predict(self, symbol: str, X: np.ndarray) -> np.ndarray:
        """Scaled next-day log returns of `symbol`'s windows: its highway + the ensemble mean -
        its centring."""
        if symbol not in self.highways_:
            raise KeyError(f"{symbol} was not fitted or adopted")
        return self._linear(symbol, X) + self._network(X) - self.shifts_[symbol]

    def predict_members(self, symbol: str, X: np.ndarray) -> np.ndarray:
        """(members, n): each member's forecast of `symbol` (for the ensemble's stability)."""
        base = self._linear(symbol, X) - self.shifts_[symbol]
        return base[None, :] + self.member_outputs(X)

    def ticker_network(self, symbol: str) -> Any:
        """One ticker's forecaster as one Keras model, with the same forecasts as `predict`: the
        members' mean, plus its highway (a frozen Dense layer on the flattened window) whose bias
        also takes out its centring. Saved like a ticker-scope network, it serves through the
        same artifact, registry and prediction code; every ticker's model calls the same member
        networks (stored once: forecaster.artifacts)."""
        if symbol not in self.highways_:
            raise KeyError(f"{symbol} was not fitted or adopted")
        highway = self.highways_[symbol]
        n_inputs = int(np.prod(self.networks_[0].input_shape[1:]))
        coef = highway.coef if highway is not None else np.zeros(n_inputs)
        intercept = highway.intercept if highway is not None else 0.0
        return compose(self.networks_, coef, intercept - self.shifts_[symbol])

    def shared_network(self) -> Any:
        """The member networks as one Keras model (one output each): what every ticker's
        network shares, saved once per fit."""
        import keras

        first = self.networks_[0]
        inputs = keras.Input(shape=first.input_shape[1:], name="window")
        return keras.Model(
            inputs, [network(inputs) for network in self.networks_], name="universe_members"
        )

    @property
    def best_epoch_(self) -> int:
        return round(float(np.median([f.best_epoch for f in self.fits_])))


def compose(members: Sequence[Any], coef: Any, bias: float) -> Any:
    """A ticker's network: the mean of the `members` (called, not copied: every ticker's model
    shares them) plus a frozen linear highway on the flattened window with that `coef` and
    `bias`."""
    import keras

    inputs = keras.Input(shape=members[0].input_shape[1:], name="window")
    outs = [network(inputs) for network in members]
    shared = keras.layers.Average(name="members")(outs) if len(outs) > 1 else outs[0]
    linear = keras.layers.Dense(1, name="highway", trainable=False)
    highway_out = linear(keras.layers.Flatten(name="flat_window")(inputs))
    linear.set_weights(
        [np.asarray(coef, dtype="float32").reshape(-1, 1), np.array([bias], dtype="float32")]
    )
    outputs = keras.layers.Add(name="forecast")([shared, highway_out])
    return keras.Model(inputs, outputs, name="stockcast_universe_lstm")


def highway_of(network: Any) -> tuple[list[float], float]:
    """The highway's coefficients and bias in a ticker's network (compose)."""
    kernel, bias = network.get_layer("highway").get_weights()
    return [float(c) for c in kernel.reshape(-1)], float(bias[0])


def members_of(shared: Any) -> list[Any]:
    """The member networks inside a loaded shared network (shared_network)."""
    found, k = [], 0
    names = {layer.name for layer in shared.layers}
    while f"member_{k}" in names:
        found.append(shared.get_layer(f"member_{k}"))
        k += 1
    if not found:
        raise ValueError("not a shared universe network: no member_0 layer")
    return found


def member_weights_of(network: Any) -> list[list[np.ndarray]]:
    """The member networks' weights inside a ticker's saved network (ticker_network)."""
    found, k = [], 0
    names = {layer.name for layer in network.layers}
    while f"member_{k}" in names:
        found.append(network.get_layer(f"member_{k}").get_weights())
        k += 1
    if not found:
        raise ValueError("not a universe-scope network: no member_0 layer")
    return found


def _predict(network: Any, X: np.ndarray) -> np.ndarray:
    out = network(np.asarray(X, dtype="float32"), training=False)
    return np.asarray(out).reshape(-1)
