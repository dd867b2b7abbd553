"""A ticker's stored forecast record as rows, live and backtest: what the history endpoint
pages, and what `format=csv` and `stockcast forecasts export` write whole.

- live: each night's served forecast (`predictions`), with the realised close once stored;
- backtest: every method's out-of-sample forecast of the newest full backtest
  (forecaster.backtest_record), with the interval it was scored with.

Rows come newest first (by as-of day; on one day live before backtest, whose methods come in
the record's order: lstm, persistence, drift, median_return).
"""

from __future__ import annotations

import csv
import dataclasses
import heapq
import io
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Literal

from sqlalchemy.orm import Session

from forecaster import backtest_record, storage
from forecaster.documents import num

Kind = Literal["live", "backtest"]
DIGITS = 6  # decimals of every price in a row: the backtest's published MAE recomputes from them


@dataclass(frozen=True)
class RecordItem:
    kind: Kind
    method: str  # what made it: the served method (live) or each method (backtest)
    as_of: date  # the last close the forecast knew
    target_date: date
    predicted_close: float | None
    low: float | None  # None: a backtest's first fold, which had no past to calibrate on
    high: float | None
    coverage: float | None  # the interval's nominal coverage
    last_close: float | None
    actual_close: float | None  # None until the target day's close is stored
    error: float | None  # predicted - actual
    abs_error: float | None
    persistence_abs_error: float | None  # |last close - actual|
    within_interval: bool | None
    model_version: int  # the version that made it (backtest: whose backtest it is)
    fold: int | None  # the backtest fold (None: live)


COLUMNS = tuple(f.name for f in dataclasses.fields(RecordItem))


def _item(
    kind: Kind,
    method: str,
    as_of: date,
    target: date,
    predicted: float,
    low: float | None,
    high: float | None,
    coverage: float,
    last: float,
    actual: float | None,
    version: int,
    fold: int | None,
) -> RecordItem:
    error = None if actual is None else predicted - actual
    within = None
    if actual is not None and low is not None and high is not None:
        within = bool(low <= actual <= high)
    return RecordItem(
        kind=kind,
        method=method,
        as_of=as_of,
        target_date=target,
        predicted_close=num(predicted, DIGITS),
        low=num(low, DIGITS),
        high=num(high, DIGITS),
        coverage=num(coverage, 4),
        last_close=num(last, DIGITS),
        actual_close=num(actual, DIGITS),
        error=num(error, DIGITS),
        abs_error=None if error is None else num(abs(error), DIGITS),
        persistence_abs_error=None if actual is None else num(abs(last - actual), DIGITS),
        within_interval=within,
        model_version=version,
        fold=fold,
    )


def backtest_items(
    session: Session,
    ticker_id: int,
    start: date | None,
    end: date | None,
    method: str | None,
) -> list[RecordItem]:
    """The newest full backtest's forecasts made in [start, end], newest first."""
    stored = backtest_record.read(session, ticker_id)
    if stored is None:
        return []
    rows = backtest_record.rows(stored.record, start, end, (method,) if method else None)
    return [
        _item(
            "backtest",
            r.method,
            r.as_of,
            r.target_date,
            r.predicted_close,
            r.low,
            r.high,
            r.coverage,
            r.last_close,
            r.actual_close,
            stored.version,
            r.fold,
        )
        # newest day first; on one day, the record's method order (a stable sort keeps it)
        for r in sorted(rows, key=lambda r: r.as_of, reverse=True)
    ]


def _live_items(
    rows: Iterable[tuple[storage.Prediction, int, float | None]],
) -> Iterator[RecordItem]:
    for p, version, actual in rows:
        yield _item(
            "live",
            p.method,
            p.as_of_date,
            p.target_date,
            p.predicted_close,
            p.lower,
            p.upper,
            p.coverage,
            p.last_close,
            actual,
            version,
            None,
        )


def page(
    session: Session,
    ticker_id: int,
    *,
    kinds: tuple[Kind, ...] = ("live", "backtest"),
    start: date | None = None,
    end: date | None = None,
    method: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> tuple[int, list[RecordItem]]:
    """(rows matching, rows[offset : offset + limit]); limit None: every row from offset."""
    backtest = backtest_items(session, ticker_id, start, end, method) if "backtest" in kinds else []
    live_total = 0
    live_rows: list[tuple[storage.Prediction, int, float | None]] = []
    if "live" in kinds:
        # Newest first on both sides: the page needs at most offset + limit live rows.
        need = None if limit is None else offset + limit
        live_total, live_rows = storage.forecast_history(
            session, ticker_id, start, end, need, 0, method
        )
    merged = heapq.merge(
        _live_items(live_rows),
        backtest,
        key=lambda i: (i.as_of, i.kind == "live"),
        reverse=True,
    )
    stop = None if limit is None else offset + limit
    return live_total + len(backtest), list(itertools.islice(merged, offset, stop))


def to_csv(items: Iterable[RecordItem]) -> str:
    """One header line (COLUMNS), then a line per row; empty fields for None."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for item in items:
        writer.writerow(["" if v is None else v for v in dataclasses.astuple(item)])
    return out.getvalue()
