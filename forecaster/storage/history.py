"""Writes that change a ticker's stored history as a whole: swapping it for a revised one, and
the corporate actions (splits, dividends) its provider reported. The caller's transaction makes
each atomic."""

from __future__ import annotations

from datetime import date

import pandas as pd
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from forecaster.storage.prices import UpsertCounts, upsert_prices
from forecaster.storage.schema import CorporateAction, Price, Ticker
from forecaster.storage.touch import touch

ACTION_KINDS = ("split", "dividend")


def replace_prices(
    session: Session, ticker: Ticker, frame: pd.DataFrame, *, source: str, adjusted: bool
) -> UpsertCounts:
    """The ticker's whole stored history becomes `frame` (a validated canonical frame): every
    stored row is deleted and the frame inserted, in the caller's transaction, so a reader sees
    the old history or the new one, never a mix."""
    session.execute(delete(Price).where(Price.ticker_id == ticker.id))
    touch(session, ticker.id)
    session.flush()
    return upsert_prices(session, ticker, frame, source=source, adjusted=adjusted)


def store_actions(session: Session, ticker: Ticker, actions: pd.DataFrame, source: str) -> int:
    """Record the provider's actions (columns `kind`, `value`; a date index); the number that
    were new. A reported action replaces a stored one of the same day and kind."""
    if actions.empty:
        return 0
    stored = {(a.date, a.kind): a for a in actions_of(session, ticker.id)}
    new = 0
    for when, row in actions.iterrows():
        day = pd.Timestamp(when).date()
        kind, value = str(row["kind"]), float(row["value"])
        if kind not in ACTION_KINDS:
            continue
        found = stored.get((day, kind))
        if found is None:
            session.add(
                CorporateAction(
                    ticker_id=ticker.id, date=day, kind=kind, value=value, source=source
                )
            )
            new += 1
        elif found.value != value:
            found.value, found.source = value, source
    session.flush()
    return new


def actions_of(
    session: Session, ticker_id: int, start: date | None = None, end: date | None = None
) -> list[CorporateAction]:
    query = select(CorporateAction).where(CorporateAction.ticker_id == ticker_id)
    if start is not None:
        query = query.where(CorporateAction.date >= start)
    if end is not None:
        query = query.where(CorporateAction.date <= end)
    return list(session.scalars(query.order_by(CorporateAction.date, CorporateAction.kind)))
