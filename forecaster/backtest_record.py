"""The backtest record: every out-of-sample forecast of a ticker's newest full backtest, for every
method, with the interval it had at the time and the realised close.

A full backtest makes ~500 forecasts per method; a quiet night reuses its backtest and keeps its
record. The record is one row per ticker (`backtest_records`), replaced by the next full
backtest in the transaction that registers its version, so the chart, the API and the export
always show the forecasts behind the figures of the model card.

Stored as compressed JSON columns (about 30 KB per ticker, against ~250 KB for a row per
forecast and method): the readers want a ticker's whole record at once, never a query across
tickers. Values keep full float precision, so an exported record recomputes the published MAE
and coverage exactly.

Each forecast's interval is the one the backtest scored it with: fold k's conformal scale comes
from folds before k only (`forecaster.backtest`), times the EWMA volatility at the forecast's
origin. Fold 0 had no past, so its forecasts have no interval.
"""

from __future__ import annotations

import json
import math
import zlib
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from forecaster import storage
from forecaster.backtest import BacktestResult
from forecaster.policy import backtest_key

FORMAT = 1
KINDS = ("live", "backtest")


@dataclass(frozen=True)
class RecordRow:
    """One backtest forecast of one method."""

    as_of: date  # the origin: the last close the forecast knew
    target_date: date
    method: str  # forecaster.policy.METHODS
    predicted_close: float
    low: float | None  # None: fold 0, whose interval had no earlier fold to learn from
    high: float | None
    coverage: float  # the nominal coverage of the interval
    last_close: float
    actual_close: float
    fold: int


def from_backtest(result: BacktestResult, methods: tuple[str, ...]) -> dict[str, Any]:
    """The JSON-ready record of a backtest: `methods` in serving names (lstm, baselines)."""
    return {
        "format": FORMAT,
        "coverage": result.config.coverage,
        "as_of": [d.date().isoformat() for d in result.as_of],
        "target_date": [d.date().isoformat() for d in result.target_dates],
        "last_close": result.last_close.tolist(),
        "actual_close": result.actual.tolist(),
        "sigma": result.origin_sigma.tolist(),
        "fold": result.fold_of.tolist(),
        "methods": {
            m: {
                "predicted": result.forecasts[backtest_key(m)].tolist(),
                "scale": [
                    None if math.isnan(q) else q for q in result.fold_scales[backtest_key(m)]
                ],
            }
            for m in methods
        },
    }


def pack(record: dict[str, Any]) -> bytes:
    return zlib.compress(json.dumps(record, separators=(",", ":")).encode(), 6)


def unpack(data: bytes) -> dict[str, Any]:
    record = json.loads(zlib.decompress(data))
    if record.get("format") != FORMAT:
        raise ValueError(f"backtest record format {record.get('format')!r} is not {FORMAT}")
    return record


def methods_of(record: dict[str, Any]) -> list[str]:
    return list(record["methods"])


def rows(
    record: dict[str, Any],
    start: date | None = None,
    end: date | None = None,
    methods: tuple[str, ...] | None = None,
) -> list[RecordRow]:
    """The record's forecasts made in [start, end] (by as-of day), oldest first and, per day, in
    the record's method order."""
    as_of = [date.fromisoformat(d) for d in record["as_of"]]
    target = [date.fromisoformat(d) for d in record["target_date"]]
    last, actual = record["last_close"], record["actual_close"]
    sigma, fold = np.asarray(record["sigma"], dtype="float64"), record["fold"]
    chosen = [m for m in record["methods"] if methods is None or m in methods]
    bounds: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for m in chosen:
        predicted = np.asarray(record["methods"][m]["predicted"], dtype="float64")
        scale = np.asarray(
            [np.nan if q is None else q for q in record["methods"][m]["scale"]], dtype="float64"
        )[np.asarray(fold, dtype=np.int64)]
        width = np.exp(scale * sigma)
        bounds[m] = (predicted, predicted / width, predicted * width)
    out = []
    coverage = float(record["coverage"])
    for i, day in enumerate(as_of):
        if (start is not None and day < start) or (end is not None and day > end):
            continue
        for m in chosen:
            predicted, low, high = bounds[m]
            out.append(
                RecordRow(
                    as_of=day,
                    target_date=target[i],
                    method=m,
                    predicted_close=float(predicted[i]),
                    low=None if math.isnan(low[i]) else float(low[i]),
                    high=None if math.isnan(high[i]) else float(high[i]),
                    coverage=coverage,
                    last_close=float(last[i]),
                    actual_close=float(actual[i]),
                    fold=int(fold[i]),
                )
            )
    return out


def store(session: Session, ticker_id: int, version_id: int, record: dict[str, Any]) -> None:
    """Replace the ticker's record with `record`, in the caller's transaction (the one that
    registers version `version_id`)."""
    row = session.get(storage.BacktestRecord, ticker_id)
    if row is None:
        row = storage.BacktestRecord(ticker_id=ticker_id)
        session.add(row)
    row.model_version_id = version_id
    row.start = date.fromisoformat(record["target_date"][0])
    row.end = date.fromisoformat(record["target_date"][-1])
    row.n_forecasts = len(record["target_date"])
    row.record = pack(record)
    row.created_at = storage.utcnow()


@dataclass(frozen=True)
class Stored:
    """A ticker's stored record and the version (number, method) whose backtest it is."""

    version: int
    method: str  # the method that version served
    record: dict[str, Any]


def read(session: Session, ticker_id: int) -> Stored | None:
    R, V = storage.BacktestRecord, storage.ModelVersion
    found = session.execute(
        select(R.record, V.version, V.method)
        .join(V, V.id == R.model_version_id)
        .where(R.ticker_id == ticker_id)
    ).first()
    if found is None:
        return None
    data, version, method = found
    return Stored(version=version, method=method, record=unpack(data))
