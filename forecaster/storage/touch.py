"""Which tickers a transaction changed, for the documents derived from their data.

A write of a ticker's prices, forecasts, backtest record, actions or suspect flag touches the
ticker: ORM writes are seen at flush, and the bulk statements (price and forecast upserts, a
history swap) call `touch(session, ticker_id)` themselves. Just before the transaction commits,
every hook registered with `on_commit` gets the touched ids and writes what it derives from them
in that same transaction (forecaster.series_document renders the chart series). A rollback
forgets them.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import chain
from typing import Any

from sqlalchemy import event, inspect, select
from sqlalchemy.orm import Session, SessionTransaction

from forecaster.storage.schema import (
    BacktestRecord,
    CorporateAction,
    ModelVersion,
    Prediction,
    Price,
    Ticker,
)

_KEY = "stockcast.touched_tickers"
Hook = Callable[[Session, set[int]], None]
_HOOKS: list[Hook] = []


def touch(session: Session, ticker_id: int) -> None:
    session.info.setdefault(_KEY, set()).add(ticker_id)


def hooks() -> list[Hook]:
    """The registered hooks (the list itself)."""
    return _HOOKS


def on_commit(hook: Hook) -> None:
    """Run `hook(session, touched ids)` before every commit that touched a ticker."""
    if hook not in _HOOKS:
        _HOOKS.append(hook)


_ROWS = (Price, Prediction, CorporateAction, BacktestRecord, ModelVersion)  # with a ticker_id
_TICKER_FIELDS = ("suspect_day", "suspect_note", "symbol")


@event.listens_for(Session, "before_flush")
def _touch_flushed(session: Session, _context: Any, _instances: Any) -> None:
    for obj in chain(session.new, session.dirty, session.deleted):
        if isinstance(obj, _ROWS):
            touch(session, obj.ticker_id)
        elif isinstance(obj, Ticker) and obj.id is not None:
            attrs = inspect(obj).attrs
            if any(attrs[name].history.has_changes() for name in _TICKER_FIELDS):
                touch(session, obj.id)


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    if session.in_nested_transaction():  # a savepoint's release: the outer commit decides
        return
    session.flush()  # the commit's own flush comes after this event: see its writes first
    touched = session.info.pop(_KEY, None)
    if touched:
        _lock(session, touched)
        for hook in _HOOKS:
            hook(session, touched)


def _lock(session: Session, touched: set[int]) -> None:
    """On PostgreSQL, take the touched tickers' rows (in id order, so two writers never wait on
    each other crosswise) before deriving anything: a concurrent writer of the same ticker waits
    here until the other commits, and what the hooks then read includes its writes. NO KEY
    UPDATE does not conflict with the KEY SHARE locks the writes' foreign keys took. (SQLite
    serialises writers already: a write transaction holds the database's write lock.)"""
    if session.get_bind().dialect.name != "postgresql":
        return
    session.execute(
        select(Ticker.id)
        .where(Ticker.id.in_(sorted(touched)))
        .order_by(Ticker.id)
        .with_for_update(key_share=True)
    )


@event.listens_for(Session, "after_transaction_end")
def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the outermost one: a savepoint's rollback forgets nothing
        session.info.pop(_KEY, None)
