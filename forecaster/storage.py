"""Sole owner of the database schema: typed SQLAlchemy 2.0 models, engine/session factory, queries.

The schema itself is created only by the Alembic migrations in `migrations/`; nothing here calls
`create_all`. Every write path is idempotent: prices upsert on (ticker_id, date), predictions on
(ticker_id, as_of_date), model versions are numbered per ticker.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
from sqlalchemy import (
    JSON,
    Boolean,
    Connection,
    Date,
    DateTime,
    Double,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    and_,
    create_engine,
    delete,
    event,
    false,
    func,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    aliased,
    mapped_column,
    relationship,
    selectinload,
    sessionmaker,
)

from forecaster import dbtimeouts
from forecaster.providers.base import PRICE_COLUMNS

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """A stored timestamp as an aware UTC datetime (SQLite keeps no zone; all stored times are UTC)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def db_error_summary(exc: DBAPIError) -> str:
    """One line saying why the database refused: the driver's first line, never empty."""
    message = str(exc.orig if exc.orig is not None else exc).strip()
    return message.splitlines()[0] if message else type(exc).__name__


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: DateTime(timezone=True),
        float: Double(),
    }


class Ticker(Base):
    __tablename__ = "tickers"
    __table_args__ = (Index("ix_tickers_tracked_symbol", "tracked", "symbol"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    symbol: Mapped[str] = mapped_column(String(20), unique=True)
    provider: Mapped[str] = mapped_column(String(32))  # where its prices come from
    # In the universe the pipeline processes; false: kept with its data but no longer refreshed.
    tracked: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    name: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    prices: Mapped[list[Price]] = relationship(back_populates="ticker", passive_deletes=True)


class Price(Base):
    __tablename__ = "prices"

    ticker_id: Mapped[int] = mapped_column(
        ForeignKey("tickers.id", ondelete="CASCADE"), primary_key=True
    )
    date: Mapped[date] = mapped_column(Date, primary_key=True)
    open: Mapped[float]
    high: Mapped[float]
    low: Mapped[float]
    close: Mapped[float]
    adj_close: Mapped[float | None]
    volume: Mapped[float]
    source: Mapped[str] = mapped_column(String(32))
    adjusted: Mapped[bool] = mapped_column(Boolean)
    fetched_at: Mapped[datetime] = mapped_column(default=utcnow)

    ticker: Mapped[Ticker] = relationship(back_populates="prices")


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("ticker_id", "version"),
        Index("ix_model_versions_ticker_status", "ticker_id", "status"),
        # At most one champion per ticker, enforced by the database itself.
        Index(
            "uq_model_versions_one_champion",
            "ticker_id",
            unique=True,
            sqlite_where=text("status = 'champion'"),
            postgresql_where=text("status = 'champion'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticker_id: Mapped[int] = mapped_column(ForeignKey("tickers.id", ondelete="CASCADE"))
    version: Mapped[int]
    # candidate (being decided) | champion | retired (was champion) | rejected
    status: Mapped[str] = mapped_column(String(16))
    rejection_reason: Mapped[str | None] = mapped_column(Text)
    artifact_path: Mapped[str] = mapped_column(String(500))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    train_start: Mapped[date] = mapped_column(Date)
    train_end: Mapped[date] = mapped_column(Date)
    test_start: Mapped[date] = mapped_column(Date)
    test_end: Mapped[date] = mapped_column(Date)
    n_train: Mapped[int]
    train_seconds: Mapped[float]
    mae: Mapped[float]
    persistence_mae: Mapped[float]
    mae_ratio: Mapped[float]
    interval_halfwidth: Mapped[float]
    interval_coverage: Mapped[float]
    # {"backtest": forecaster.backtest summary, "serving": what predict needs for any method}
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    trained_through: Mapped[date | None] = mapped_column(Date)  # last close the weights saw
    method: Mapped[str] = mapped_column(String(16), server_default="lstm")  # policy.METHODS
    method_reason: Mapped[str | None] = mapped_column(Text)
    trained_at: Mapped[datetime] = mapped_column(default=utcnow)
    promoted_at: Mapped[datetime | None]

    ticker: Mapped[Ticker] = relationship()


class Prediction(Base):
    __tablename__ = "predictions"
    __table_args__ = (
        UniqueConstraint("ticker_id", "as_of_date"),
        Index("ix_predictions_ticker_target", "ticker_id", "target_date"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticker_id: Mapped[int] = mapped_column(ForeignKey("tickers.id", ondelete="CASCADE"))
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    as_of_date: Mapped[date] = mapped_column(Date)
    target_date: Mapped[date] = mapped_column(Date)
    last_close: Mapped[float]
    predicted_close: Mapped[float]
    lower: Mapped[float]
    upper: Mapped[float]
    coverage: Mapped[float]
    method: Mapped[str] = mapped_column(String(16), server_default="lstm")  # what produced it
    method_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    ticker: Mapped[Ticker] = relationship()
    model_version: Mapped[ModelVersion] = relationship()


RUN_STATUSES = ("running", "succeeded", "partial", "failed", "skipped")
STEP_STATUSES = ("running", "succeeded", "failed", "skipped")


class JobRun(Base):
    __tablename__ = "job_runs"
    __table_args__ = (
        Index("ix_job_runs_status_started", "status", "started_at"),
        Index("ix_job_runs_started_at", "started_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))  # pipeline | retrain
    trigger: Mapped[str] = mapped_column(String(32))  # scheduler | cli
    status: Mapped[str] = mapped_column(String(16))  # RUN_STATUSES
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    host: Mapped[str | None] = mapped_column(String(255))
    pid: Mapped[int | None]
    tickers: Mapped[list[str]] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(Text)  # full detail: operators only
    error_code: Mapped[str | None] = mapped_column(String(40))  # forecaster.errors codes

    steps: Mapped[list[JobStep]] = relationship(
        back_populates="run", order_by="JobStep.id", passive_deletes=True
    )


class JobStep(Base):
    __tablename__ = "job_steps"
    __table_args__ = (
        Index("ix_job_steps_run_ticker", "run_id", "ticker"),
        Index("ix_job_steps_ticker_id", "ticker", "id"),  # a ticker's newest step
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("job_runs.id", ondelete="CASCADE"))
    ticker: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(16))  # STEP_STATUSES
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    duration_seconds: Mapped[float | None]
    rows_fetched: Mapped[int | None]
    rows_inserted: Mapped[int | None]
    rows_rejected: Mapped[int | None]
    model_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL")
    )
    promoted: Mapped[bool | None]
    detail: Mapped[str | None] = mapped_column(Text)  # what happened, e.g. "up to date, no retrain"
    error: Mapped[str | None] = mapped_column(Text)  # full detail: operators only
    error_code: Mapped[str | None] = mapped_column(String(40))  # forecaster.errors codes
    worker: Mapped[str | None] = mapped_column(String(80))  # who ran it (jobs.executors)

    run: Mapped[JobRun] = relationship(back_populates="steps")


class Lock(Base):
    """Lock rows for databases without advisory locks (SQLite); PostgreSQL uses pg_advisory_lock."""

    __tablename__ = "locks"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    owner: Mapped[str] = mapped_column(String(255))
    acquired_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]


# --------------------------------------------------------------------------- engine / sessions


def make_engine(url: str, *, timeout: float | None = 2.0, **kwargs: Any) -> Engine:
    """Create an engine; SQLite gets foreign keys, WAL and a busy timeout so readers never block.

    On PostgreSQL, `timeout` bounds every connect and every wait for an answer on the client side
    and sets statement_timeout (forecaster.dbtimeouts); None (migrations) waits as long as it takes.
    """
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {"timeout": 30})
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    engine = create_engine(url, **kwargs)
    if timeout is not None:
        dbtimeouts.install(engine, timeout)
    return engine


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL (None for other databases and in-memory SQLite)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def file_identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of a file, or None when it does not exist: a replaced file changes it."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def ensure_sqlite_dir(url: str) -> None:
    """Create the directory of a SQLite file URL (the embedded default lives in data_dir)."""
    from pathlib import Path

    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


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


def forecast_history(
    session: Session,
    ticker_id: int,
    start: date | None,
    end: date | None,
    limit: int,
    offset: int,
) -> tuple[int, list[tuple[Prediction, int, float | None]]]:
    """Predictions made in [start, end], newest first: (total matching, page of (prediction,
    model version number, the realized close of its target day or None))."""
    actual = aliased(Price)
    conditions = [Prediction.ticker_id == ticker_id]
    if start:
        conditions.append(Prediction.as_of_date >= start)
    if end:
        conditions.append(Prediction.as_of_date <= end)
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


def ping(connection: Connection) -> None:
    """One round trip: raises if the database does not answer."""
    connection.execute(text("SELECT 1"))


def latest_prediction(session: Session, ticker_id: int) -> Prediction | None:
    return session.scalar(
        select(Prediction)
        .where(Prediction.ticker_id == ticker_id)
        .order_by(Prediction.as_of_date.desc())
        .limit(1)
    )


def all_symbols(session: Session) -> list[str]:
    return list(session.scalars(select(Ticker.symbol).order_by(Ticker.symbol)))


def symbols_with_prices(session: Session) -> Iterable[str]:
    return session.scalars(select(Ticker.symbol).where(Ticker.prices.any()).order_by(Ticker.symbol))


# --------------------------------------------------------------------------- pages: dashboard, chart


@dataclass(frozen=True)
class DashboardRow:
    """Everything the dashboard shows for one ticker, read in a handful of set-based queries."""

    ticker: Ticker
    last_date: date | None
    last_close: float | None
    recent_closes: list[float]  # oldest first, at most `recent`
    prediction: Prediction | None  # the newest forecast
    model: ModelVersion | None  # the version that made it, else the champion
    last_step: JobStep | None  # the ticker's newest pipeline step


def _search(query: Any, q: str | None) -> Any:
    if not q:
        return query
    return query.where(
        Ticker.symbol.contains(q.upper(), autoescape=True)
        | func.lower(func.coalesce(Ticker.name, "")).contains(q.lower(), autoescape=True)
    )


def dashboard_rows(
    session: Session, q: str | None, limit: int, offset: int, recent: int = 30
) -> tuple[int, list[DashboardRow]]:
    """One page of tickers (by symbol, `q` a case-insensitive substring of symbol or name) and
    the total that match. Each query is bounded by the page, so 500 tickers cost what 50 do."""
    total = session.scalar(_search(select(func.count()).select_from(Ticker), q)) or 0
    # Correlated max(): an index seek per ticker on (ticker_id, date), never a scan of prices.
    last_day = select(func.max(Price.date)).where(Price.ticker_id == Ticker.id).scalar_subquery()
    page = session.execute(
        _search(select(Ticker, last_day), q).order_by(Ticker.symbol).limit(limit).offset(offset)
    ).all()
    if not page:
        return total, []
    ids = [t.id for t, _ in page]

    closes: dict[int, list[tuple[date, float]]] = {i: [] for i in ids}
    # Per ticker, the date of its `recent`-th newest close (an index seek), then the rows from it:
    # one constant statement, whatever the page.
    p2 = aliased(Price)
    cutoff = (
        select(p2.date)
        .where(p2.ticker_id == Ticker.id)
        .order_by(p2.date.desc())
        .limit(1)
        .offset(recent - 1)
        .scalar_subquery()
    )
    cuts = (
        select(Ticker.id.label("tid"), cutoff.label("since")).where(Ticker.id.in_(ids)).subquery()
    )
    for tid, day, close in session.execute(
        select(Price.ticker_id, Price.date, Price.close)
        .join(cuts, Price.ticker_id == cuts.c.tid)
        .where(Price.date >= func.coalesce(cuts.c.since, date(1, 1, 1)))
        .order_by(Price.ticker_id, Price.date)
    ):
        closes[tid].append((day, close))

    newest = (
        select(func.max(Prediction.as_of_date))
        .where(Prediction.ticker_id == Ticker.id)
        .correlate(Ticker)
        .scalar_subquery()
    )
    predictions = {
        p.ticker_id: (p, mv)
        for p, mv in session.execute(
            select(Prediction, ModelVersion)
            .join(Ticker, Ticker.id == Prediction.ticker_id)
            .join(ModelVersion, ModelVersion.id == Prediction.model_version_id)
            .where(Prediction.ticker_id.in_(ids), Prediction.as_of_date == newest)
        ).tuples()
    }
    champions = {
        mv.ticker_id: mv
        for mv in session.scalars(
            select(ModelVersion).where(
                ModelVersion.ticker_id.in_([i for i in ids if i not in predictions]),
                ModelVersion.status == "champion",
            )
        )
    }
    symbols = [t.symbol for t, _ in page]
    step_ids = (
        select(func.max(JobStep.id)).where(JobStep.ticker.in_(symbols)).group_by(JobStep.ticker)
    )
    steps = {s.ticker: s for s in session.scalars(select(JobStep).where(JobStep.id.in_(step_ids)))}

    rows = []
    for ticker, last in page:
        series = closes[ticker.id][-recent:]
        prediction, model = predictions.get(ticker.id, (None, champions.get(ticker.id)))
        rows.append(
            DashboardRow(
                ticker=ticker,
                last_date=last,
                last_close=series[-1][1] if series else None,
                recent_closes=[c for _, c in series],
                prediction=prediction,
                model=model,
                last_step=steps.get(ticker.symbol),
            )
        )
    return total, rows


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
        forecasts=forecasts[:limit][::-1],
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
    predictions = session.execute(delete(Prediction).where(Prediction.ticker_id == ticker.id))
    versions = session.execute(delete(ModelVersion).where(ModelVersion.ticker_id == ticker.id))
    prices = session.execute(delete(Price).where(Price.ticker_id == ticker.id))
    session.execute(delete(Ticker).where(Ticker.id == ticker.id))
    session.expunge(ticker)
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
