"""Train one candidate: chronological split, train-only statistics, early stopping on validation,
conformal interval from validation residuals, walk-forward evaluation on the untouched test part."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from forecaster.evaluation import EvaluationReport, conformal_halfwidth
from forecaster.model import ForecastBundle, LSTMForecaster
from forecaster.settings import Settings
from forecaster.windows import prepare

log = logging.getLogger(__name__)


@dataclass
class TrainingOutcome:
    bundle: ForecastBundle
    config: dict[str, Any]
    train_start: date  # first training target date
    train_end: date  # last training target date (statistics fit up to here)
    val_end: date
    test_start: date
    test_end: date
    n_train: int
    n_val: int
    n_test: int
    train_seconds: float
    epochs_run: int
    best_epoch: int
    evaluation: EvaluationReport

    @property
    def samples_per_second(self) -> float:
        return self.n_train * self.epochs_run / self.train_seconds if self.train_seconds else 0.0


def training_config(settings: Settings) -> dict[str, Any]:
    return {
        "window": settings.window,
        "features": list(settings.features),
        "lstm_units": list(settings.lstm_units),
        "epochs": settings.epochs,
        "batch_size": settings.batch_size,
        "patience": settings.patience,
        "learning_rate": settings.learning_rate,
        "seed": settings.seed,
        "val_fraction": settings.val_fraction,
        "test_fraction": settings.test_fraction,
        "interval_coverage": settings.interval_coverage,
        "target": "next-day log return",
    }


def train(prices: pd.DataFrame, settings: Settings, ticker: str = "") -> TrainingOutcome:
    started = time.perf_counter()
    ws, split, stats = prepare(
        prices,
        settings.window,
        settings.features,
        settings.val_fraction,
        settings.test_fraction,
        ticker,
    )
    train_part = ws.part(0, split.n_train)
    val_part = ws.part(split.n_train, split.val_end)
    test_part = ws.part(split.val_end, split.n)
    model = LSTMForecaster(
        units=settings.lstm_units,
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        patience=settings.patience,
        learning_rate=settings.learning_rate,
        seed=settings.seed,
    ).fit(train_part.X, train_part.y, val_part.X, val_part.y)

    # Interval: conformal quantile of |validation residuals| in log-return units.
    val_pred = model.predict(val_part.X).astype("float64") * stats.return_std
    val_true = np.log(val_part.next_close / val_part.last_close)
    halfwidth = conformal_halfwidth(np.abs(val_pred - val_true), settings.interval_coverage)
    config = training_config(settings)
    bundle = ForecastBundle(
        model=model,
        stats=stats,
        interval_halfwidth=halfwidth,
        coverage=settings.interval_coverage,
        config=config,
        metadata={
            "ticker": ticker,
            "data_start": str(prices.index[0].date()),
            "data_end": str(prices.index[-1].date()),
        },
    )
    test_start = test_part.target_dates[0].date()
    test_end = test_part.target_dates[-1].date()
    report = bundle.evaluate(prices, test_start, test_end)
    report.extra.update(
        {
            "epochs_run": model.epochs_run_,
            "best_epoch": model.best_epoch_,
            "n_train": split.n_train,
            "n_val": split.n_val,
        }
    )
    outcome = TrainingOutcome(
        bundle=bundle,
        config=config,
        train_start=train_part.target_dates[0].date(),
        train_end=stats.train_end,
        val_end=val_part.target_dates[-1].date(),
        test_start=test_start,
        test_end=test_end,
        n_train=split.n_train,
        n_val=split.n_val,
        n_test=split.n_test,
        train_seconds=model.train_seconds_,
        epochs_run=model.epochs_run_,
        best_epoch=model.best_epoch_,
        evaluation=report,
    )
    log.info(
        "model trained",
        extra={
            "ticker": ticker,
            "n_train": split.n_train,
            "epochs": model.epochs_run_,
            "fit_seconds": round(model.train_seconds_, 2),
            "total_seconds": round(time.perf_counter() - started, 2),
            "mae_ratio": round(report.mae_ratio, 4),
        },
    )
    return outcome
