"""The chart series: what `GET /v1/series/<ticker>` returns (closes, forecasts with their
intervals, realised closes and errors, the backtest record, actions, the suspect flag), shaped by
pydantic models and rendered here.

A ticker's whole series (no range) is also stored, gzip-compressed, in `series_documents`: every
write of the ticker's prices, forecasts, backtest record, actions or suspect flag touches it
(forecaster.storage.touch), and just before that transaction commits the document is rendered
again from what the transaction wrote. So the API serves a whole history with one read, and a
reader never sees a document older than the data it shows. Importing this module registers that
commit hook; the modules that write those rows import it.

The models live here, not in api/, because the pipeline renders the document and forecaster never
imports api/; api/schemas.py re-exports them, so /openapi.json documents the very models that
shape the bytes.
"""

from __future__ import annotations

import gzip
import logging
import math
from collections.abc import Sequence
from datetime import date
from typing import Literal

from pydantic import Field
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from forecaster import backtest_record, storage
from forecaster.documents import Method, Schema, dumps
from forecaster.storage import utcnow

log = logging.getLogger(__name__)

MAX_LIMIT = 20_000  # 80 years of sessions: a whole history fits one response
LEVEL = 6  # gzip: ~5x smaller than the JSON, ~10 ms for a 1 MB document


class Suspect(Schema):
    """An unexplained one-day move in the stored closes: persistence serves the ticker and its
    training waits until an operator resolves it (`stockcast tickers resolve`) or a backfill
    adjusts the history."""

    day: date
    note: str | None


class SeriesCloses(Schema):
    date: list[date]
    close: list[float | None]


class SeriesForecasts(Schema):
    """Columns, one entry per forecast, oldest target first; actual_close and the errors are
    null until the target day's close is stored. persistence_abs_error: |last close - actual|."""

    as_of: list[date]
    target_date: list[date]
    predicted_close: list[float | None]
    low: list[float | None]
    high: list[float | None]
    coverage: list[float | None]
    method: list[Method]
    actual_close: list[float | None]
    abs_error: list[float | None]
    persistence_abs_error: list[float | None]


class SeriesBacktest(Schema):
    """The newest full backtest's out-of-sample forecasts of the method its version served, as
    columns by target date (oldest first): what the chart draws as "backtest (out of sample)".
    low/high are null in the first fold, which had no earlier fold to calibrate on."""

    method: Method
    model_version: int
    as_of: list[date]
    target_date: list[date]
    predicted_close: list[float | None]
    low: list[float | None]
    high: list[float | None]
    actual_close: list[float | None]
    abs_error: list[float | None]
    persistence_abs_error: list[float | None]


class Action(Schema):
    """A corporate action the provider reported: a split (value: new shares per old share) or a
    cash dividend (value: per share)."""

    date: date
    kind: Literal["split", "dividend"]
    value: float


class Series(Schema):
    ticker: str
    start: date | None
    end: date | None
    truncated: bool
    closes: SeriesCloses
    forecasts: SeriesForecasts
    backtest: SeriesBacktest | None = Field(
        description="null until the ticker's first full backtest with a stored record."
    )
    actions: list[Action] = Field(description="Splits and dividends in the range, oldest first.")
    suspect: Suspect | None


# --- rendering --------------------------------------------------------------------------------


def _column(values: Sequence[float | None], digits: int = 4) -> list[float | None]:
    """num() over a column, inlined: a whole history is tens of thousands of values."""
    return [round(v, digits) if v is not None and math.isfinite(v) else None for v in values]


def errors(
    predicted: list[float], last: list[float], actual: list[float | None]
) -> dict[str, list[float | None]]:
    """The chart's error columns: |forecast - actual| and persistence's |last close - actual|,
    null until the actual close is stored."""
    return {
        "abs_error": _column(
            [None if a is None else abs(p - a) for p, a in zip(predicted, actual, strict=True)]
        ),
        "persistence_abs_error": _column(
            [None if a is None else abs(c - a) for c, a in zip(last, actual, strict=True)]
        ),
    }


def suspect(row: storage.Ticker) -> Suspect | None:
    if row.suspect_day is None:
        return None
    return Suspect(day=row.suspect_day, note=row.suspect_note)


def render(
    session: Session,
    row: storage.Ticker,
    start: date | None = None,
    end: date | None = None,
    limit: int = MAX_LIMIT,
) -> Series:
    """The ticker's series in [start, end] (at most the newest `limit` closes and forecasts)."""
    data = storage.chart_series(session, row.id, start, end, limit)
    fc = data.forecasts
    actual = [f.actual_close for f in fc]
    return Series(
        ticker=row.symbol,
        start=start,
        end=end,
        truncated=data.truncated,
        closes=SeriesCloses(date=list(data.dates), close=_column(data.closes)),
        forecasts=SeriesForecasts(
            as_of=[f.as_of_date for f in fc],
            target_date=[f.target_date for f in fc],
            predicted_close=_column([f.predicted_close for f in fc]),
            low=_column([f.lower for f in fc]),
            high=_column([f.upper for f in fc]),
            coverage=_column([f.coverage for f in fc]),
            method=[f.method for f in fc],
            actual_close=_column(actual),
            **errors([f.predicted_close for f in fc], [f.last_close for f in fc], actual),
        ),
        backtest=_backtest(session, row.id, start, end),
        actions=[
            Action(date=a.date, kind=a.kind, value=a.value)  # type: ignore[arg-type]
            for a in storage.actions_of(session, row.id, start, end)
        ],
        suspect=suspect(row),
    )


def _backtest(
    session: Session, ticker_id: int, start: date | None, end: date | None
) -> SeriesBacktest | None:
    stored = backtest_record.read(session, ticker_id)
    if stored is None:
        return None
    rows = [
        r
        for r in backtest_record.rows(stored.record, methods=(stored.method,))
        if (start is None or r.target_date >= start) and (end is None or r.target_date <= end)
    ]
    return SeriesBacktest(
        method=stored.method,
        model_version=stored.version,
        as_of=[r.as_of for r in rows],
        target_date=[r.target_date for r in rows],
        predicted_close=_column([r.predicted_close for r in rows]),
        low=_column([r.low for r in rows]),
        high=_column([r.high for r in rows]),
        actual_close=_column([r.actual_close for r in rows]),
        **errors(
            [r.predicted_close for r in rows],
            [r.last_close for r in rows],
            [r.actual_close for r in rows],
        ),
    )


def body(session: Session, row: storage.Ticker) -> bytes:
    """The whole series as the API sends it."""
    return dumps(render(session, row)).encode()


# --- the stored document ----------------------------------------------------------------------


def write(session: Session, row: storage.Ticker) -> None:
    """Render the ticker's whole series and store it, in the caller's transaction."""
    store(session, row.id, body(session, row))


def store(session: Session, ticker_id: int, data: bytes) -> None:
    """Insert or replace the ticker's document (without loading the old one)."""
    row = {
        "ticker_id": ticker_id,
        "body": gzip.compress(data, LEVEL, mtime=0),
        "size": len(data),
        "created_at": utcnow(),
    }
    storage.upsert(session, storage.SeriesDocument, [row], ["ticker_id"])


def read(session: Session, symbol: str) -> bytes | None:
    """The stored document of `symbol` (gzip), with one indexed read; None when there is none
    (an unknown ticker, or none written yet)."""
    return session.scalar(
        select(storage.SeriesDocument.body)
        .join(storage.Ticker, storage.Ticker.id == storage.SeriesDocument.ticker_id)
        .where(storage.Ticker.symbol == symbol)
    )


def _write_touched(session: Session, touched: set[int]) -> None:
    for ticker_id in sorted(touched):
        row = session.get(storage.Ticker, ticker_id)
        if row is None:  # purged in this transaction
            continue
        try:
            with session.begin_nested():  # a failed read (e.g. a timeout) spoils only this
                write(session, row)
        except Exception:  # a document must never cost the data its transaction writes
            log.exception("series document not written", extra={"ticker": row.symbol})
            session.execute(
                delete(storage.SeriesDocument).where(storage.SeriesDocument.ticker_id == row.id)
            )  # the API renders the series per request until the next write


storage.on_touched_commit(_write_touched)
