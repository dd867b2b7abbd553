"""The linear autoregressive highway: ridge regression of the scaled next-day return on the
window, in closed form (numpy only, no TensorFlow).

LSTNet's AR component (Lai et al. 2018): beside the LSTM, a linear map of the flattened window,
fitted by ridge regression with the penalty chosen by generalised cross-validation on the
training windows (Golub, Heath and Wahba 1979). "ar": on the close feature's days only (7
coefficients instead of 35: far less estimation noise); "ridge": on every input; "none": no
highway. In ticker scope the fit becomes a frozen Dense layer of the network
(forecaster.model); in universe scope each ticker keeps its own (forecaster.pooled).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Ridge penalties tried, in units of the number of training windows (the features are already in
# units of the training return std, so one grid serves every ticker).
RIDGE_ALPHAS = tuple(float(a) for a in np.logspace(-4, 2, 13))


@dataclass(frozen=True)
class RidgeFit:
    coef: np.ndarray  # (window * n_features,) on the flattened window
    intercept: float
    alpha: float  # the penalty GCV chose, in units of the number of windows

    def weights(self) -> list[np.ndarray]:
        """The highway Dense layer's [kernel, bias]."""
        kernel = self.coef.reshape(-1, 1).astype("float32")
        return [kernel, np.array([self.intercept], dtype="float32")]

    def predict(self, X: np.ndarray) -> np.ndarray:
        A = np.asarray(X, dtype="float64").reshape(len(X), -1)
        return A @ self.coef + self.intercept


def ridge_highway(X: np.ndarray, y: np.ndarray) -> RidgeFit:
    """Ridge regression of the target on the flattened window, training windows only, the
    penalty chosen over RIDGE_ALPHAS by generalised cross-validation. With nothing linear to
    learn (a random walk) a large penalty wins and the highway stays near zero; an
    autoregressive return gets its coefficients in closed form, which a small early-stopped LSTM
    with an MAE loss only approaches."""
    A = np.asarray(X, dtype="float64").reshape(len(X), -1)
    t = np.asarray(y, dtype="float64")
    n = len(t)
    x_mean, y_mean = A.mean(axis=0), float(t.mean())
    U, s, Vt = np.linalg.svd(A - x_mean, full_matrices=False)
    Uy = U.T @ (t - y_mean)

    def gcv(alpha: float) -> float:
        shrink = s**2 / (s**2 + alpha * n)
        rss = float(np.sum((t - y_mean - U @ (shrink * Uy)) ** 2))
        return rss / n / (1.0 - float(shrink.sum()) / n) ** 2

    alpha = min(RIDGE_ALPHAS, key=gcv)
    coef = Vt.T @ (s / (s**2 + alpha * n) * Uy)
    return RidgeFit(coef=coef, intercept=y_mean - float(x_mean @ coef), alpha=alpha)


def fit_highway(
    X: np.ndarray, y: np.ndarray, feature_names: Sequence[str] | None, mode: str
) -> RidgeFit | None:
    """The highway of `mode` ("ar", "ridge", "none") fitted on (X, y); with "ar", zeros in the
    kernel outside the close feature."""
    if mode == "none":
        return None
    names = list(feature_names or ())
    if mode != "ar" or "close" not in names:
        return ridge_highway(X, y)
    column = names.index("close")
    part = ridge_highway(X[:, :, [column]], y)
    coef = np.zeros(X.shape[1:], dtype="float64")
    coef[:, column] = part.coef
    return RidgeFit(coef=coef.ravel(), intercept=part.intercept, alpha=part.alpha)
