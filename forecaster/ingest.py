"""Fetch, validate and store a ticker's prices, and keep the stored history honest.

- **Incremental**: only the days before the first and after the last stored one are new.
- **Revised history**: each fetch also reads the newest `overlap_days` stored days again. A price
  that changed beyond `tolerance` means the provider rewrote history (Yahoo does after a split:
  every earlier bar is divided by the ratio). The whole history is then fetched again and swapped
  for the stored one in the caller's transaction; the result says from which day it changed.
  The whole-history fingerprint of the next training (forecaster.training) sees the change and
  runs a full backtest.
- **Suspect moves**: a newly stored day whose close moved more than `suspect_move` in log terms
  from the day before, with no split or dividend recorded that day, makes the ticker suspect:
  persistence serves and training waits until an operator resolves it (`stockcast tickers
  resolve`) or a backfill removes the move. A provider that never revises (csv) meets the same
  check.
- **Corporate actions** a provider reports with its bars (`frame.attrs["actions"]`: a date index,
  columns `kind` and `value`) are stored.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session

import forecaster.series_document  # noqa: F401  (its commit hook renders the series)
from forecaster import storage
from forecaster.errors import UnknownTicker, ValidationFailed
from forecaster.providers.base import OHLC, PriceProvider, check_range, normalize_ticker
from forecaster.validation import check_daily, gaps, validate_prices

log = logging.getLogger(__name__)

COMPARED = OHLC  # a revision shows in the prices (volume is noisy)
# A first backfill checks its newest year for suspect moves: older ones no longer reach a
# forecast's inputs (the window, the drift baseline's year, the volatility estimate).
SUSPECT_LOOKBACK = 252


@dataclass(frozen=True)
class IntegrityRules:
    overlap_days: int = 10  # newest stored days read again on every fetch (0: no check)
    tolerance: float = 1e-4  # relative change of a stored price that counts as a revision
    suspect_move: float = 0.4  # one-day |log return| that needs an explanation

    @classmethod
    def from_settings(cls, settings: Any) -> IntegrityRules:
        return cls(
            settings.revision_overlap_days, settings.revision_tolerance, settings.suspect_move
        )


@dataclass
class BackfillResult:
    symbol: str
    provider: str
    fetched: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    rejected_summary: str = ""
    ranges: list[tuple[date | None, date | None]] = field(default_factory=list)
    first_date: date | None = None
    last_date: date | None = None
    gaps: list[tuple[date, int]] = field(default_factory=list)  # (day after a gap, its length)
    revised_from: date | None = None  # the provider revised stored history from this day
    suspect: str | None = None  # a suspect move found by this fetch (the ticker's note)
    cleared: str | None = None  # the suspect move this fetch removed from the history
    actions: int = 0  # corporate actions newly recorded


def _missing_ranges(
    first: date | None, last: date | None, start: date | None, end: date | None
) -> list[tuple[date | None, date | None]]:
    """What to fetch for an incremental backfill: before the stored range and after it."""
    if first is None or last is None:
        return [(start, end)]
    ranges: list[tuple[date | None, date | None]] = []
    if start is None and end is not None and end < first:
        return [(None, end)]  # explicitly asked for days before anything stored
    if start is not None and start < first:
        ranges.append(
            (start, min(first - timedelta(days=1), end) if end else first - timedelta(days=1))
        )
    after = last + timedelta(days=1)
    if end is None or end >= after:
        ranges.append((max(after, start) if start else after, end))
    return ranges


def _with_overlap(
    ranges: list[tuple[date | None, date | None]], tail: pd.DataFrame, last: date, end: date | None
) -> list[tuple[date | None, date | None]]:
    """The ranges with the range after the stored days starting at the overlap's first day (or
    the overlap alone, when there is nothing after)."""
    overlap_start = tail.index[0].date()
    after = last + timedelta(days=1)
    for i, (a, b) in enumerate(ranges):
        if a == after:
            return [*ranges[:i], (overlap_start, b), *ranges[i + 1 :]]
    if end is None or end >= overlap_start:
        return [*ranges, (overlap_start, min(end, last) if end else last)]
    return ranges


def revised_days(stored: pd.DataFrame, fetched: pd.DataFrame, tolerance: float) -> pd.DatetimeIndex:
    """Days both frames hold whose prices differ by more than `tolerance` (relative)."""
    common = stored.index.intersection(fetched.index)
    if common.empty:
        return common
    old = stored.loc[common, list(COMPARED)].to_numpy(dtype="float64")
    new = fetched.loc[common, list(COMPARED)].to_numpy(dtype="float64")
    change = np.max(np.abs(new - old) / np.abs(old), axis=1)
    return common[change > tolerance]


def _fetch(
    provider: PriceProvider, symbol: str, ranges: list[tuple[date | None, date | None]]
) -> tuple[list[pd.DataFrame], list[pd.DataFrame]]:
    frames, actions = [], []
    for a, b in ranges:
        if a is not None and b is not None and b < a:
            continue
        frame = provider.fetch(symbol, a, b)
        log.info(
            "fetched prices",
            extra={
                "ticker": symbol,
                "provider": provider.name,
                "start": str(a),
                "end": str(b),
                "rows": len(frame),
            },
        )
        frames.append(frame)
        found = frame.attrs.get("actions")
        if isinstance(found, pd.DataFrame) and not found.empty:
            actions.append(found)
    return frames, actions


def _validated(
    frames: list[pd.DataFrame], symbol: str, strict: bool, result: BackfillResult
) -> pd.DataFrame:
    """The valid rows of the fetched frames; rejected rows reported on `result`."""
    combined = pd.concat(frames) if len(frames) > 1 else frames[0]
    result.fetched = len(combined)
    check_daily(combined, symbol)  # weekly or monthly bars: refused, nothing stored
    report = validate_prices(combined)
    result.gaps = [(day.date(), days) for day, days in gaps(report.valid.index)]
    if result.gaps:
        log.warning(
            "gaps in the price history",
            extra={
                "ticker": symbol,
                "gaps": len(result.gaps),
                "first": [f"{d} ({n} days)" for d, n in result.gaps[:5]],
            },
        )
    result.rejected = len(report.rejected)
    if not report.ok:
        result.rejected_summary = report.summary()
        log.warning(
            "rows rejected by validation", extra={"ticker": symbol, "rejected": result.rejected}
        )
        if strict:
            raise ValidationFailed(f"{symbol}: {report.summary()}\nnothing was stored (--strict)")
    return report.valid


def backfill_ticker(
    session: Session,
    provider: PriceProvider,
    ticker: str,
    start: date | None = None,
    end: date | None = None,
    *,
    force: bool = False,
    strict: bool = False,
    rules: IntegrityRules | None = None,
) -> BackfillResult:
    """Fetch, validate and store daily prices for one ticker, atomically within the caller's
    transaction (see the module docstring for what is checked).

    Incremental unless `force`: only ranges before the first / after the last stored day (and
    the overlap) are fetched. Invalid rows are rejected and reported; with `strict`, any rejected
    row aborts the whole batch.
    """
    rules = rules or IntegrityRules()
    symbol = normalize_ticker(ticker)
    check_range(start, end)
    result = BackfillResult(symbol=symbol, provider=provider.name)
    existing = storage.get_ticker(session, symbol)
    first = last = None
    tail = pd.DataFrame()
    if existing is not None and not force:
        first, last = storage.price_bounds(session, existing.id)
    result.ranges = _missing_ranges(first, last, start, end)
    if existing is not None and last is not None and rules.overlap_days > 0:
        tail = storage.load_prices(session, existing.id, limit=rules.overlap_days)
        result.ranges = _with_overlap(result.ranges, tail, last, end)
    frames, actions = _fetch(provider, symbol, result.ranges)
    if not frames:
        result.ranges = []
        result.first_date, result.last_date = first, last
        return result
    valid = _validated(frames, symbol, strict, result)
    if valid.empty and existing is None:
        if result.rejected:
            raise ValidationFailed(f"{symbol}: no valid rows to store")
        raise UnknownTicker(symbol, f"{provider.name} returned no prices for the requested range")
    row = existing or storage.get_or_create_ticker(session, symbol, provider.name)
    row.provider = provider.name
    revised = revised_days(tail, valid, rules.tolerance) if not tail.empty else None
    if revised is not None and len(revised):
        valid = _swap_history(session, provider, row, first, end, revised, strict, result)
        actions = [a for a in [valid.attrs.get("actions")] if isinstance(a, pd.DataFrame)]
    else:
        if not tail.empty:  # the overlap agreed: stored days stay as they are
            valid = valid.loc[~valid.index.isin(tail.index)]
        counts = storage.upsert_prices(
            session, row, valid, source=provider.name, adjusted=provider.adjusted
        )
        result.inserted, result.updated, result.unchanged = (
            counts.inserted,
            counts.updated,
            counts.unchanged + (result.fetched - result.rejected - len(valid)),
        )
    for found in actions:
        result.actions += storage.store_actions(session, row, found, provider.name)
    session.flush()
    if result.revised_from is None:
        _check_moves(session, row, valid, existing is None, rules, result)
    _recheck_suspect(session, row, rules, result)
    result.first_date, result.last_date = storage.price_bounds(session, row.id)
    log.info(
        "backfill stored",
        extra={
            "ticker": symbol,
            "inserted": result.inserted,
            "updated": result.updated,
            "unchanged": result.unchanged,
            "rejected": result.rejected,
            "revised_from": str(result.revised_from) if result.revised_from else None,
        },
    )
    return result


def _swap_history(
    session: Session,
    provider: PriceProvider,
    row: storage.Ticker,
    first: date | None,
    end: date | None,
    revised: pd.DatetimeIndex,
    strict: bool,
    result: BackfillResult,
) -> pd.DataFrame:
    """The provider rewrote stored days: fetch the whole stored span again and swap it in."""
    result.revised_from = revised[0].date()
    log.warning(
        "history revised by the provider: fetching it whole again",
        extra={"ticker": row.symbol, "first_changed": str(result.revised_from)},
    )
    frames, actions = _fetch(provider, row.symbol, [(first, end)])
    whole = _validated(frames, row.symbol, strict, result)
    if whole.empty:
        raise ValidationFailed(f"{row.symbol}: the revised history has no valid rows")
    counts = storage.replace_prices(
        session, row, whole, source=provider.name, adjusted=provider.adjusted
    )
    result.inserted, result.updated, result.unchanged = counts.inserted, 0, 0
    whole.attrs["actions"] = pd.concat(actions) if actions else None
    return whole


def _check_moves(
    session: Session,
    row: storage.Ticker,
    new: pd.DataFrame,
    first_backfill: bool,
    rules: IntegrityRules,
    result: BackfillResult,
) -> None:
    """Mark the ticker suspect for the first unexplained large move among the new days."""
    if new.empty or row.suspect_day is not None:
        return
    if first_backfill:
        new = new.iloc[-SUSPECT_LOOKBACK:]
    before = storage.load_prices(
        session, row.id, end=new.index[0].date() - timedelta(days=1), limit=1
    )
    closes = pd.concat([before["close"], new["close"]])
    moves = np.log(closes).diff().iloc[1:]
    large = moves[np.abs(moves) > rules.suspect_move]
    if large.empty:
        return
    explained = {a.date for a in storage.actions_of(session, row.id, large.index[0].date())}
    for when, move in large.items():
        day = pd.Timestamp(when).date()
        if day in explained:
            continue
        row.suspect_day = day
        row.suspect_note = (
            f"the close moved {np.expm1(move):+.0%} on {day} (log return {move:+.2f}) with no "
            "split, dividend or revision recorded"
        )
        result.suspect = row.suspect_note
        log.warning("suspect move", extra={"ticker": row.symbol, "day": str(day)})
        return


def suspect_move_of(session: Session, row: storage.Ticker, day: date) -> float | None:
    """The stored log return into `day` (None when the day or the one before is not stored)."""
    closes = storage.load_prices(session, row.id, end=day, limit=2)["close"]
    if len(closes) < 2 or closes.index[-1].date() != day:
        return None
    return float(np.log(closes.iloc[-1] / closes.iloc[-2]))


def _recheck_suspect(
    session: Session, row: storage.Ticker, rules: IntegrityRules, result: BackfillResult
) -> None:
    """A backfill that adjusted the suspect day (or removed it) clears the flag."""
    if row.suspect_day is None or result.suspect is not None:
        return
    move = suspect_move_of(session, row, row.suspect_day)
    if move is None or abs(move) <= rules.suspect_move:
        result.cleared = f"the move on {row.suspect_day} is no longer in the stored history"
        log.info("suspect move cleared by a backfill", extra={"ticker": row.symbol})
        row.suspect_day = row.suspect_note = None
