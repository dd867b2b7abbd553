"""Rows -> the response models of api/schemas.py, shared by the endpoints."""

from __future__ import annotations

import math
from typing import Any

import api.schemas as schemas
from forecaster.evaluation import finite
from forecaster.storage import ModelVersion, Prediction, Price


def num(value: float | None, digits: int = 6) -> float | None:
    """A JSON number, or null: NaN and infinities never reach a response (strict JSON)."""
    if value is None:
        return None
    value = float(value)
    return round(value, digits) if math.isfinite(value) else None


def backtest(mv: ModelVersion) -> schemas.Backtest | None:
    """The public figures of a version's rolling-origin backtest (None for legacy versions)."""
    bt = mv.metrics.get("backtest") if isinstance(mv.metrics, dict) else None
    if not isinstance(bt, dict):
        return None
    model = bt.get("metrics", {}).get("model", {})
    return schemas.Backtest(
        scheme=bt.get("scheme"),
        folds=bt.get("folds"),
        n_forecasts=bt.get("n_forecasts"),
        start=bt.get("start"),
        end=bt.get("end"),
        mae=num(bt.get("mae")),
        rmse=num(model.get("rmse")),
        mape=num(model.get("mape")),
        directional_accuracy=num(model.get("directional_accuracy")),
        persistence_mae=num(bt.get("persistence_mae")),
        mae_ratio=num(bt.get("mae_ratio")),
        best_baseline=bt.get("best_baseline"),
        best_baseline_mae=num(bt.get("best_baseline_mae")),
        best_baseline_mae_ratio=num(bt.get("best_baseline_mae_ratio")),
        dm_stat=num(bt.get("dm_stat"), 4),
        dm_pvalue=num(bt.get("dm_pvalue")),
        dm_best_stat=num(bt.get("dm_best_stat"), 4),
        dm_best_pvalue=num(bt.get("dm_best_pvalue")),
        coverage=num(bt.get("coverage"), 4),
        coverage_by_method={
            ("lstm" if m == "model" else m): num(v, 4)
            for m, v in (bt.get("coverage_by_method") or {}).items()
        },
        nominal_coverage=num(bt.get("nominal_coverage"), 4),
        baselines={
            name: schemas.BaselineFigures(
                mae=num(m.get("mae")),
                rmse=num(m.get("rmse")),
                mape=num(m.get("mape")),
                directional_accuracy=num(m.get("directional_accuracy")),
            )
            for name, m in bt.get("metrics", {}).items()
            if name != "model"
        },
    )


def _summary_fields(mv: ModelVersion) -> dict[str, Any]:
    bt = mv.metrics.get("backtest") if isinstance(mv.metrics, dict) else None
    legacy = mv.metrics.get("metrics", {}) if isinstance(mv.metrics, dict) else {}
    figures = bt.get("metrics", {}) if isinstance(bt, dict) else legacy
    return {
        "version": mv.version,
        "status": mv.status,
        "method": mv.method,
        "method_reason": mv.method_reason,
        "trained_at": mv.trained_at,
        "trained_through": mv.trained_through,
        "mae": num(mv.mae),
        "persistence_mae": num(mv.persistence_mae),
        "mae_ratio_vs_persistence": num(mv.mae_ratio),
        "directional_accuracy": num(figures.get("model", {}).get("directional_accuracy")),
        "test_start": mv.test_start,
        "test_end": mv.test_end,
        "backtest": backtest(mv),
    }


def model_summary(mv: ModelVersion) -> schemas.ModelSummary:
    return schemas.ModelSummary(**_summary_fields(mv))


def interval(p: Prediction) -> schemas.Interval:
    return schemas.Interval(low=num(p.lower, 4), high=num(p.upper, 4), coverage=num(p.coverage, 4))


def change_pct(p: Prediction) -> float | None:
    return num((p.predicted_close / p.last_close - 1.0) * 100.0, 4)


def forecast(symbol: str, p: Prediction, mv: ModelVersion) -> schemas.Forecast:
    return schemas.Forecast(
        ticker=symbol,
        as_of=p.as_of_date,
        target_date=p.target_date,
        predicted_close=num(p.predicted_close, 4),
        interval=interval(p),
        last_close=num(p.last_close, 4),
        persistence_forecast=num(p.last_close, 4),
        predicted_change_pct=change_pct(p),
        method=p.method,
        method_reason=p.method_reason,
        model=model_summary(mv),
        created_at=p.created_at,
    )


def model_version(mv: ModelVersion) -> schemas.ModelVersion:
    return schemas.ModelVersion(
        **_summary_fields(mv),
        champion=mv.status == "champion",
        rejection_reason=mv.rejection_reason,
        promoted_at=mv.promoted_at,
        train_start=mv.train_start,
        train_end=mv.train_end,
        n_train=mv.n_train,
        train_seconds=num(mv.train_seconds, 3),
        interval_halfwidth_log=num(mv.interval_halfwidth),
        interval_coverage=num(mv.interval_coverage, 4),
        config=finite(mv.config),
        evaluation=finite(mv.metrics),
    )


def price(row: Price) -> schemas.Price:
    return schemas.Price(
        date=row.date,
        open=num(row.open, 4),
        high=num(row.high, 4),
        low=num(row.low, 4),
        close=num(row.close, 4),
        adj_close=num(row.adj_close, 4),
        volume=num(row.volume, 0),
        source=row.source,
        adjusted=row.adjusted,
    )
