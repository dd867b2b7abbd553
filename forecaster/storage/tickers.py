"""Tickers: finding and registering them, the tracked universe, the operator's overview and
the purge."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    and_,
    delete,
    false,
    func,
    select,
    true,
    update,
)
from sqlalchemy.orm import (
    Session,
    aliased,
)

from forecaster.storage.models import delete_unused_networks
from forecaster.storage.schema import (
    BacktestRecord,
    CorporateAction,
    JobRun,
    JobStep,
    LiveForecast,
    ModelArtifact,
    ModelVersion,
    Prediction,
    Price,
    SeriesDocument,
    Ticker,
    TickerStateRow,
    as_utc,
    utcnow,
)
from forecaster.storage.upsert import insert_for


def get_ticker(session: Session, symbol: str) -> Ticker | None:
    return session.scalar(select(Ticker).where(Ticker.symbol == symbol))


def get_or_create_ticker(
    session: Session, symbol: str, provider: str, name: str | None = None
) -> Ticker:
    """Idempotent under concurrency: INSERT ... ON CONFLICT DO NOTHING, then read the row, so
    parallel backfills of a new ticker all succeed instead of racing get-then-insert."""
    ticker = get_ticker(session, symbol)
    if ticker is None:
        stmt = insert_for(session, Ticker).values(
            symbol=symbol, provider=provider, name=name, created_at=utcnow()
        )
        session.execute(stmt.on_conflict_do_nothing(index_elements=["symbol"]))
        ticker = get_ticker(session, symbol)
        assert ticker is not None
    return ticker


@dataclass(frozen=True)
class TickerSummary:
    symbol: str
    provider: str
    rows: int
    first_date: date | None
    last_date: date | None
    last_close: float | None


def ticker_summaries(session: Session) -> list[TickerSummary]:
    stats = (
        select(
            Price.ticker_id,
            func.count().label("rows"),
            func.min(Price.date).label("first"),
            func.max(Price.date).label("last"),
        )
        .group_by(Price.ticker_id)
        .subquery()
    )
    rows = session.execute(
        select(Ticker, stats.c.rows, stats.c.first, stats.c.last)
        .outerjoin(stats, stats.c.ticker_id == Ticker.id)
        .order_by(Ticker.symbol)
    ).all()
    out = []
    for ticker, n, first, last in rows:
        last_close = None
        if last is not None:
            last_close = session.scalar(
                select(Price.close).where(Price.ticker_id == ticker.id, Price.date == last)
            )
        out.append(TickerSummary(ticker.symbol, ticker.provider, n or 0, first, last, last_close))
    return out


def all_symbols(session: Session) -> list[str]:
    return list(session.scalars(select(Ticker.symbol).order_by(Ticker.symbol)))


def tracked_symbols(session: Session) -> list[str]:
    """Every tracked ticker in the order they were registered: what a pipeline run processes.

    (Registration order, not symbol order: the same on every database, whatever its collation.)
    """
    return list(
        session.scalars(select(Ticker.symbol).where(Ticker.tracked == true()).order_by(Ticker.id))
    )


def is_fresh(session: Session) -> bool:
    """No ticker was ever stored and no pipeline run recorded: a database to seed."""
    return (
        session.scalar(select(Ticker.id).limit(1)) is None
        and session.scalar(select(JobRun.id).limit(1)) is None
    )


def set_tracked(session: Session, symbols: Sequence[str], tracked: bool) -> int:
    """Mark tickers tracked or not; the number of rows that changed."""
    changed = session.execute(
        update(Ticker)
        .where(Ticker.symbol.in_(list(symbols)), Ticker.tracked != tracked)
        .values(tracked=tracked)
    )
    # Session.execute is typed as returning Result; for DML it is a CursorResult, with rowcount.
    return int(changed.rowcount or 0)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class PurgeCounts:
    prices: int
    predictions: int
    model_versions: int


def purge_ticker(session: Session, ticker: Ticker) -> PurgeCounts:
    """Delete a ticker and everything stored for it, in the caller's transaction.

    Predictions go first (they reference model versions without a cascade); run steps keep their
    record with model_version_id set to NULL by the foreign key.
    """
    session.execute(delete(LiveForecast).where(LiveForecast.ticker_id == ticker.id))
    predictions = session.execute(delete(Prediction).where(Prediction.ticker_id == ticker.id))
    session.execute(delete(BacktestRecord).where(BacktestRecord.ticker_id == ticker.id))
    session.execute(delete(SeriesDocument).where(SeriesDocument.ticker_id == ticker.id))
    session.execute(delete(TickerStateRow).where(TickerStateRow.ticker_id == ticker.id))
    ticker_versions = select(ModelVersion.id).where(ModelVersion.ticker_id == ticker.id)
    session.execute(
        delete(ModelArtifact).where(ModelArtifact.model_version_id.in_(ticker_versions))
    )
    delete_unused_networks(session)  # the shared networks only its versions used
    versions = session.execute(delete(ModelVersion).where(ModelVersion.ticker_id == ticker.id))
    prices = session.execute(delete(Price).where(Price.ticker_id == ticker.id))
    session.execute(delete(CorporateAction).where(CorporateAction.ticker_id == ticker.id))
    session.execute(delete(Ticker).where(Ticker.id == ticker.id))
    session.expunge(ticker)
    # rowcount: see set_tracked
    return PurgeCounts(
        prices=int(prices.rowcount or 0),  # type: ignore[attr-defined]
        predictions=int(predictions.rowcount or 0),  # type: ignore[attr-defined]
        model_versions=int(versions.rowcount or 0),  # type: ignore[attr-defined]
    )


@dataclass(frozen=True)
class TickerOverview:
    """One ticker as `stockcast tickers list` and GET /v1/tickers show it."""

    symbol: str
    provider: str
    tracked: bool
    rows: int
    first_date: date | None
    last_date: date | None
    last_close: float | None
    champion_version: int | None
    forecast_as_of: date | None
    forecast_target: date | None
    forecast_close: float | None
    forecast_method: str | None
    last_step_status: str | None
    last_step_at: datetime | None


def _ticker_filters(tracked: bool | None, contains: str | None) -> list[Any]:
    conditions: list[Any] = []
    if tracked is not None:
        conditions.append(Ticker.tracked == (true() if tracked else false()))
    if contains:
        conditions.append(Ticker.symbol.contains(contains, autoescape=True))
    return conditions


def count_tickers(
    session: Session, *, tracked: bool | None = None, contains: str | None = None
) -> int:
    conditions = _ticker_filters(tracked, contains)
    return session.scalar(select(func.count()).select_from(Ticker).where(*conditions)) or 0


def ticker_overview(
    session: Session,
    *,
    tracked: bool | None = None,
    contains: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[TickerOverview]:
    """A page of tickers ordered by symbol, each with its stored range, last close, champion,
    newest forecast and newest pipeline step: one statement whatever the page size.

    `contains` is a substring of the (upper-case) symbol. Per ticker the newest and oldest rows
    are index seeks (correlated subqueries); only the row count reads a page's prices.
    """
    page = (
        select(Ticker.id)
        .where(*_ticker_filters(tracked, contains))
        .order_by(Ticker.symbol)
        .limit(limit)
        .offset(offset)
        .cte("page")
    )
    counts = (
        select(Price.ticker_id, func.count().label("rows"))
        .where(Price.ticker_id.in_(select(page.c.id)))
        .group_by(Price.ticker_id)
        .subquery()
    )

    def newest(column: Any, *where: Any) -> Any:
        return select(column).where(*where).correlate(Ticker).scalar_subquery()

    mine = Price.ticker_id == Ticker.id
    first = newest(func.min(Price.date), mine)
    last = newest(func.max(Price.date), mine)
    last_close = select(Price.close).where(mine).order_by(Price.date.desc()).limit(1)
    forecast, step = aliased(Prediction), aliased(JobStep)
    forecast_day = newest(func.max(Prediction.as_of_date), Prediction.ticker_id == Ticker.id)
    step_id = newest(func.max(JobStep.id), JobStep.ticker == Ticker.symbol)
    rows = session.execute(
        select(
            Ticker.symbol,
            Ticker.provider,
            Ticker.tracked,
            counts.c.rows,
            first,
            last,
            last_close.correlate(Ticker).scalar_subquery(),
            ModelVersion.version,
            forecast.as_of_date,
            forecast.target_date,
            forecast.predicted_close,
            forecast.method,
            step.status,
            step.started_at,
        )
        .join(page, page.c.id == Ticker.id)
        .outerjoin(counts, counts.c.ticker_id == Ticker.id)
        .outerjoin(
            ModelVersion,
            and_(ModelVersion.ticker_id == Ticker.id, ModelVersion.status == "champion"),
        )
        .outerjoin(
            forecast, and_(forecast.ticker_id == Ticker.id, forecast.as_of_date == forecast_day)
        )
        .outerjoin(step, step.id == step_id)
        .order_by(Ticker.symbol)
    ).all()
    return [
        TickerOverview(
            symbol=r[0],
            provider=r[1],
            tracked=bool(r[2]),
            rows=r[3] or 0,
            first_date=r[4],
            last_date=r[5],
            last_close=r[6],
            champion_version=r[7],
            forecast_as_of=r[8],
            forecast_target=r[9],
            forecast_close=r[10],
            forecast_method=r[11],
            last_step_status=r[12],
            last_step_at=as_utc(r[13]) if r[13] is not None else None,
        )
        for r in rows
    ]
