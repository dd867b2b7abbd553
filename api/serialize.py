"""Row -> JSON shapes shared by the endpoints (kept in one place to match openapi.py)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from forecaster.storage import ModelVersion, Prediction, Price, as_utc


def iso(value: date | datetime | None) -> str | None:
    if isinstance(value, datetime):
        value = as_utc(value)
    return None if value is None else value.isoformat()


def num(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(float(value), digits)


def model_summary(mv: ModelVersion) -> dict[str, Any]:
    metrics = mv.metrics.get("metrics", {}) if isinstance(mv.metrics, dict) else {}
    return {
        "version": mv.version,
        "status": mv.status,
        "trained_at": iso(mv.trained_at),
        "mae": num(mv.mae),
        "persistence_mae": num(mv.persistence_mae),
        "mae_ratio_vs_persistence": num(mv.mae_ratio),
        "directional_accuracy": num(metrics.get("model", {}).get("directional_accuracy")),
        "test_start": iso(mv.test_start),
        "test_end": iso(mv.test_end),
    }


def forecast(symbol: str, p: Prediction, mv: ModelVersion) -> dict[str, Any]:
    return {
        "ticker": symbol,
        "as_of": iso(p.as_of_date),
        "target_date": iso(p.target_date),
        "predicted_close": num(p.predicted_close, 4),
        "interval": {
            "low": num(p.lower, 4),
            "high": num(p.upper, 4),
            "coverage": num(p.coverage, 4),
        },
        "last_close": num(p.last_close, 4),
        "persistence_forecast": num(p.last_close, 4),
        "predicted_change_pct": num((p.predicted_close / p.last_close - 1.0) * 100.0, 4),
        "model": model_summary(mv),
        "created_at": iso(p.created_at),
    }


def model_version(mv: ModelVersion) -> dict[str, Any]:
    return {
        **model_summary(mv),
        "champion": mv.status == "champion",
        "rejection_reason": mv.rejection_reason,
        "promoted_at": iso(mv.promoted_at),
        "train_start": iso(mv.train_start),
        "train_end": iso(mv.train_end),
        "n_train": mv.n_train,
        "train_seconds": num(mv.train_seconds, 3),
        "interval_halfwidth_log": num(mv.interval_halfwidth),
        "interval_coverage": num(mv.interval_coverage, 4),
        "config": mv.config,
        "evaluation": mv.metrics,
    }


def price(row: Price) -> dict[str, Any]:
    return {
        "date": iso(row.date),
        "open": num(row.open, 4),
        "high": num(row.high, 4),
        "low": num(row.low, 4),
        "close": num(row.close, 4),
        "adj_close": num(row.adj_close, 4),
        "volume": num(row.volume, 0),
        "source": row.source,
        "adjusted": row.adjusted,
    }
