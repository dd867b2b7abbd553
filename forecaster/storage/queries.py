"""Every query the application runs. Each write path is idempotent: prices upsert on
(ticker_id, date), predictions on (ticker_id, as_of_date), model versions are numbered per
ticker; callers own the session and its transaction."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pandas as pd
from sqlalchemy import (
    Connection,
    and_,
    bindparam,
    delete,
    false,
    func,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import (
    Session,
    aliased,
    selectinload,
)

from forecaster.providers.base import PRICE_COLUMNS
from forecaster.storage.schema import (
    BacktestRecord,
    Base,
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
from forecaster.storage.touch import touch

# --------------------------------------------------------------------------- tickers


def get_ticker(session: Session, symbol: str) -> Ticker | None:
    return session.scalar(select(Ticker).where(Ticker.symbol == symbol))


def get_or_create_ticker(
    session: Session, symbol: str, provider: str, name: str | None = None
) -> Ticker:
    """Idempotent under concurrency: INSERT ... ON CONFLICT DO NOTHING, then read the row, so
    parallel backfills of a new ticker all succeed instead of racing get-then-insert."""
    ticker = get_ticker(session, symbol)
    if ticker is None:
        stmt = _insert(session, Ticker).values(
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


# --------------------------------------------------------------------------- prices


def price_bounds(session: Session, ticker_id: int) -> tuple[date | None, date | None]:
    first, last = session.execute(
        select(func.min(Price.date), func.max(Price.date)).where(Price.ticker_id == ticker_id)
    ).one()
    return first, last


@dataclass(frozen=True)
class UpsertCounts:
    inserted: int
    updated: int
    unchanged: int


_VALUE_COLUMNS = ("open", "high", "low", "close", "adj_close", "volume")


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)


def upsert_prices(
    session: Session,
    ticker: Ticker,
    frame: pd.DataFrame,
    *,
    source: str,
    adjusted: bool,
) -> UpsertCounts:
    """Insert new days and update changed ones; identical rows are left alone.

    `frame` is a validated canonical frame. The caller's transaction makes the batch atomic.
    """
    if frame.empty:
        return UpsertCounts(0, 0, 0)
    first, last = frame.index.min().date(), frame.index.max().date()
    existing = {
        row.date: row
        for row in session.execute(
            select(Price.date, *[getattr(Price, c) for c in _VALUE_COLUMNS]).where(
                Price.ticker_id == ticker.id, Price.date >= first, Price.date <= last
            )
        )
    }
    now = utcnow()
    to_write: list[dict[str, Any]] = []
    inserted = updated = 0
    for when, values in zip(
        frame.index, frame.loc[:, list(PRICE_COLUMNS)].itertuples(index=False), strict=True
    ):
        day = when.date()
        record = {
            c: (None if pd.isna(v) else float(v))
            for c, v in zip(PRICE_COLUMNS, values, strict=True)
        }
        old = existing.get(day)
        if old is None:
            inserted += 1
        elif all(_same(getattr(old, c), record[c]) for c in _VALUE_COLUMNS):
            continue
        else:
            updated += 1
        to_write.append(
            {
                "ticker_id": ticker.id,
                "date": day,
                **record,
                "source": source,
                "adjusted": adjusted,
                "fetched_at": now,
            }
        )
    if to_write:
        _upsert(session, Price, to_write, ["ticker_id", "date"])
        touch(session, ticker.id)
    return UpsertCounts(inserted, updated, len(frame) - inserted - updated)


def _insert(session: Session, model: type[Base]) -> Any:
    """The dialect's INSERT, which has on_conflict_do_update / on_conflict_do_nothing."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(model)
    if dialect == "sqlite":
        return sqlite.insert(model)
    raise NotImplementedError(f"upsert not supported on {dialect}")  # pragma: no cover


def _upsert(
    session: Session, model: type[Base], rows: Sequence[dict[str, Any]], keys: list[str]
) -> None:
    stmt = _insert(session, model)
    update_cols = {c: stmt.excluded[c] for c in rows[0] if c not in keys}
    stmt = stmt.on_conflict_do_update(index_elements=keys, set_=update_cols)
    for start in range(0, len(rows), 1000):
        session.execute(stmt, list(rows[start : start + 1000]))


def load_prices(
    session: Session,
    ticker_id: int,
    start: date | None = None,
    end: date | None = None,
    limit: int | None = None,
) -> pd.DataFrame:
    """Stored prices as a canonical frame (DatetimeIndex `date`, PRICE_COLUMNS), oldest first.

    With `limit`, the newest `limit` rows of the range.
    """
    query = select(Price.date, *[getattr(Price, c) for c in PRICE_COLUMNS]).where(
        Price.ticker_id == ticker_id
    )
    if start is not None:
        query = query.where(Price.date >= start)
    if end is not None:
        query = query.where(Price.date <= end)
    if limit is not None:
        query = query.order_by(Price.date.desc()).limit(limit)
    else:
        query = query.order_by(Price.date)
    rows = session.execute(query).all()
    frame = pd.DataFrame(rows, columns=["date", *PRICE_COLUMNS])
    frame.index = pd.DatetimeIndex(pd.to_datetime(frame.pop("date")), name="date").as_unit("ns")
    frame = frame.astype("float64")
    return frame.sort_index()


def price_page(
    session: Session, ticker_id: int, start: date | None, end: date | None, limit: int
) -> tuple[list[Price], bool]:
    """Rows in [start, end], oldest first, at most `limit`, and whether more matched. Without
    `start`: the newest `limit` rows up to `end`."""
    query = select(Price).where(Price.ticker_id == ticker_id)
    if start is not None:
        query = query.where(Price.date >= start)
    if end is not None:
        query = query.where(Price.date <= end)
    if start is None:
        rows = list(session.scalars(query.order_by(Price.date.desc()).limit(limit + 1)))
        return list(reversed(rows[:limit])), len(rows) > limit
    rows = list(session.scalars(query.order_by(Price.date).limit(limit + 1)))
    return rows[:limit], len(rows) > limit


# --------------------------------------------------------------------------- models and predictions


def champion(session: Session, ticker_id: int) -> ModelVersion | None:
    return session.scalar(
        select(ModelVersion).where(
            ModelVersion.ticker_id == ticker_id, ModelVersion.status == "champion"
        )
    )


def model_versions(session: Session, ticker_id: int) -> list[ModelVersion]:
    return list(
        session.scalars(
            select(ModelVersion)
            .where(ModelVersion.ticker_id == ticker_id)
            .order_by(ModelVersion.version.desc())
        )
    )


def next_version_number(session: Session, ticker_id: int) -> int:
    current = session.scalar(
        select(func.max(ModelVersion.version)).where(ModelVersion.ticker_id == ticker_id)
    )
    return (current or 0) + 1


def upsert_prediction(session: Session, values: dict[str, Any]) -> Prediction:
    """One forecast per (ticker, as-of date): a re-run or a new champion replaces it."""
    row = {**values, "created_at": utcnow()}
    _upsert(session, Prediction, [row], ["ticker_id", "as_of_date"])
    touch(session, values["ticker_id"])
    prediction = session.scalar(
        select(Prediction).where(
            Prediction.ticker_id == values["ticker_id"],
            Prediction.as_of_date == values["as_of_date"],
        )
    )
    assert prediction is not None
    session.refresh(prediction)
    return prediction


def latest_forecast(session: Session, symbol: str) -> tuple[Prediction, ModelVersion] | None:
    """The ticker's newest prediction and the version that made it, in one query."""
    row = session.execute(
        select(Prediction, ModelVersion)
        .join(Ticker, Ticker.id == Prediction.ticker_id)
        .join(ModelVersion, ModelVersion.id == Prediction.model_version_id)
        .where(Ticker.symbol == symbol)
        .order_by(Prediction.as_of_date.desc())
        .limit(1)
    ).first()
    return None if row is None else (row[0], row[1])


# The API's hot read (GET /v1/forecasts/<ticker>), built once: the stored document of the
# ticker's newest prediction and its version's current status, through the unique indexes on
# tickers.symbol and predictions (ticker_id, as_of_date) and the versions' primary key. Core
# tables, so the row comes back as plain values with no ORM identity map or loading.
_predictions, _versions, _tickers = (
    Prediction.__table__,
    ModelVersion.__table__,
    Ticker.__table__,
)
LATEST_DOCUMENT = (
    select(_predictions.c.document, _versions.c.status)
    .select_from(
        _predictions.join(_tickers, _tickers.c.id == _predictions.c.ticker_id).join(
            _versions, _versions.c.id == _predictions.c.model_version_id
        )
    )
    .where(_tickers.c.symbol == bindparam("symbol"))
    .order_by(_predictions.c.as_of_date.desc())
    .limit(1)
)


def latest_document(connection: Connection, symbol: str) -> tuple[str | None, str] | None:
    """(stored forecast document or None for rows written before documents existed, the model
    version's current status) of the ticker's newest prediction; None when it has none."""
    row = connection.execute(LATEST_DOCUMENT, {"symbol": symbol}).first()
    return None if row is None else (row[0], row[1])


def forecast_history(
    session: Session,
    ticker_id: int,
    start: date | None,
    end: date | None,
    limit: int | None,
    offset: int,
    method: str | None = None,
) -> tuple[int, list[tuple[Prediction, int, float | None]]]:
    """Predictions made in [start, end] (served by `method` if given), newest first: (total
    matching, page of (prediction, model version number, the realized close of its target day or
    None)); limit None: every one from `offset`."""
    actual = aliased(Price)
    conditions = [Prediction.ticker_id == ticker_id]
    if start:
        conditions.append(Prediction.as_of_date >= start)
    if end:
        conditions.append(Prediction.as_of_date <= end)
    if method:
        conditions.append(Prediction.method == method)
    total = session.scalar(select(func.count()).select_from(Prediction).where(*conditions)) or 0
    rows = session.execute(
        select(Prediction, ModelVersion.version, actual.close)
        .join(ModelVersion, ModelVersion.id == Prediction.model_version_id)
        .outerjoin(
            actual,
            and_(actual.ticker_id == Prediction.ticker_id, actual.date == Prediction.target_date),
        )
        .where(*conditions)
        .order_by(Prediction.as_of_date.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return total, [(p, version, close) for p, version, close in rows]


def newest_forecast_days(session: Session) -> dict[str, date]:
    """Each ticker's newest forecast's as-of day (forecast freshness for /metrics)."""
    rows = session.execute(
        select(Ticker.symbol, func.max(Prediction.as_of_date))
        .join(Prediction, Prediction.ticker_id == Ticker.id)
        .group_by(Ticker.symbol)
    ).all()
    return {symbol: as_of for symbol, as_of in rows if as_of is not None}


def latest_prediction(session: Session, ticker_id: int) -> Prediction | None:
    return session.scalar(
        select(Prediction)
        .where(Prediction.ticker_id == ticker_id)
        .order_by(Prediction.as_of_date.desc())
        .limit(1)
    )


def all_symbols(session: Session) -> list[str]:
    return list(session.scalars(select(Ticker.symbol).order_by(Ticker.symbol)))


# --------------------------------------------------------------------------- pages: the chart (the
# dashboard's read model: forecaster.storage.dashboard)


@dataclass(frozen=True)
class ChartSeries:
    """Columns for a chart: closes by date, and forecasts by target date with the realized close.

    Each forecast row has as_of_date, target_date, predicted_close, lower, upper, coverage,
    method, last_close and actual_close (None until the target day's close is stored). Plain
    rows, not ORM objects: a whole history is thousands of them."""

    dates: list[date]
    closes: list[float]
    forecasts: list[Any]
    truncated: bool


def chart_series(
    session: Session, ticker_id: int, start: date | None, end: date | None, limit: int
) -> ChartSeries:
    """Closes in [start, end] and the forecasts whose target falls in it, oldest first; at most
    the newest `limit` of each (`truncated` says so)."""
    P = Prediction
    price_query = select(Price.date, Price.close).where(Price.ticker_id == ticker_id)
    forecast_query = (
        select(
            P.as_of_date,
            P.target_date,
            P.predicted_close,
            P.lower,
            P.upper,
            P.coverage,
            P.method,
            P.last_close,
            Price.close.label("actual_close"),
        )
        .outerjoin(Price, (Price.ticker_id == P.ticker_id) & (Price.date == P.target_date))
        .where(P.ticker_id == ticker_id)
    )
    if start is not None:
        price_query = price_query.where(Price.date >= start)
        forecast_query = forecast_query.where(P.target_date >= start)
    if end is not None:
        price_query = price_query.where(Price.date <= end)
        forecast_query = forecast_query.where(P.target_date <= end)
    prices = session.execute(price_query.order_by(Price.date.desc()).limit(limit + 1)).all()
    forecasts = session.execute(
        forecast_query.order_by(P.target_date.desc()).limit(limit + 1)
    ).all()
    truncated = len(prices) > limit or len(forecasts) > limit
    prices = prices[:limit][::-1]
    return ChartSeries(
        dates=[d for d, _ in prices],
        closes=[c for _, c in prices],
        forecasts=list(forecasts[:limit][::-1]),
        truncated=truncated,
    )


def job_runs(
    session: Session, limit: int, offset: int, ticker: str | None = None
) -> tuple[int, list[JobRun]]:
    """Runs newest first with their steps (only runs that had a step for `ticker` if given)."""
    query = select(JobRun)
    if ticker is not None:
        query = query.where(JobRun.id.in_(select(JobStep.run_id).where(JobStep.ticker == ticker)))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    runs = session.scalars(
        query.options(selectinload(JobRun.steps))
        .order_by(JobRun.started_at.desc(), JobRun.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return total, list(runs)


# --------------------------------------------------------------------------- the tracked universe


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
