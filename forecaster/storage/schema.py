"""The schema: typed SQLAlchemy 2.0 models. Created only by the Alembic migrations in
`migrations/`; nothing here calls `create_all`."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
    true,
)
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    mapped_column,
    relationship,
)

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
    # An unexplained one-day move (forecaster.ingest): persistence serves and training waits
    # until an operator resolves it (`stockcast tickers resolve`) or a backfill removes it.
    suspect_day: Mapped[date | None] = mapped_column(Date)
    suspect_note: Mapped[str | None] = mapped_column(Text)
    # The end of the backtest under which the live record demoted the network: until a full
    # backtest replaces it, the best baseline serves (forecaster.live).
    demoted_under: Mapped[date | None] = mapped_column(Date)

    prices: Mapped[list[Price]] = relationship(back_populates="ticker", passive_deletes=True)


class LiveForecast(Base):
    """What each method forecast on a night, served or not: the live record is scored from these
    and the closes stored later (forecaster.live), so nothing is selected after the fact."""

    __tablename__ = "live_forecasts"

    ticker_id: Mapped[int] = mapped_column(
        ForeignKey("tickers.id", ondelete="CASCADE"), primary_key=True
    )
    as_of_date: Mapped[date] = mapped_column(Date, primary_key=True)
    method: Mapped[str] = mapped_column(String(16), primary_key=True)  # lstm or a baseline
    target_date: Mapped[date] = mapped_column(Date)
    predicted_close: Mapped[float]
    model_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CorporateAction(Base):
    """A split (value: new shares per old share) or a cash dividend reported by the provider."""

    __tablename__ = "corporate_actions"

    ticker_id: Mapped[int] = mapped_column(
        ForeignKey("tickers.id", ondelete="CASCADE"), primary_key=True
    )
    date: Mapped[date] = mapped_column(Date, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # split | dividend
    value: Mapped[float]
    source: Mapped[str] = mapped_column(String(32))


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
    status: Mapped[str] = mapped_column(String(16))  # MODEL_STATUSES
    rejection_reason: Mapped[str | None] = mapped_column(Text)
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

    def record(self, part: str) -> dict[str, Any] | None:
        """A part of `metrics` ("backtest", "serving"), or None (legacy rows lack them)."""
        found = self.metrics.get(part) if isinstance(self.metrics, dict) else None
        return found if isinstance(found, dict) else None


class SharedNetwork(Base):
    """A network several versions serve through (universe scope: the ensemble every ticker of one
    fit shares), stored once and addressed by the digest of its `.keras` file. Deleted with the
    last artifact that uses it (forecaster.storage.models.delete_unused_networks)."""

    __tablename__ = "shared_networks"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int]  # bytes of the network file
    network: Mapped[bytes] = mapped_column(LargeBinary)  # the `.keras` file
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ModelArtifact(Base):
    """A model version's artifact, committed in the same transaction as its version row
    (forecaster.artifacts): the Keras network file, or the shared network it uses, and the JSON
    that loads it. Retention deletes old versions' rows; the versions keep their metadata."""

    __tablename__ = "model_artifacts"
    __table_args__ = (
        CheckConstraint(
            "(network IS NULL) <> (shared_sha256 IS NULL)", name="own_or_shared_network"
        ),
    )

    model_version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True
    )
    sha256: Mapped[str] = mapped_column(String(64))  # of the network bytes and the meta JSON
    size: Mapped[int]  # bytes of the network file (its own or the shared one)
    network: Mapped[bytes | None] = mapped_column(LargeBinary)  # its own `.keras` file
    # or the network it shares with other versions, stored once
    shared_sha256: Mapped[str | None] = mapped_column(
        ForeignKey("shared_networks.sha256"), index=True
    )
    meta: Mapped[dict[str, Any]] = mapped_column(JSON)  # statistics, parameters, interval
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class BacktestRecord(Base):
    """A ticker's newest full backtest, forecast by forecast (forecaster.backtest_record): written
    with the version whose backtest it is, replaced by the next full backtest."""

    __tablename__ = "backtest_records"

    ticker_id: Mapped[int] = mapped_column(
        ForeignKey("tickers.id", ondelete="CASCADE"), primary_key=True
    )
    model_version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE")
    )
    start: Mapped[date] = mapped_column(Date)  # first target day
    end: Mapped[date] = mapped_column(Date)  # last target day
    n_forecasts: Mapped[int]  # per method
    record: Mapped[bytes] = mapped_column(LargeBinary)  # compressed JSON columns
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SeriesDocument(Base):
    """A ticker's whole chart series (`GET /v1/series/<ticker>` without a range), rendered when
    its prices, forecasts, backtest record, actions or suspect flag change, in that transaction
    (forecaster.series_document), so the API serves it with one read. gzip-compressed JSON."""

    __tablename__ = "series_documents"

    ticker_id: Mapped[int] = mapped_column(
        ForeignKey("tickers.id", ondelete="CASCADE"), primary_key=True
    )
    body: Mapped[bytes] = mapped_column(LargeBinary)  # gzip of the JSON bytes the API sends
    size: Mapped[int]  # bytes of the uncompressed JSON
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TickerStateRow(Base):
    """What the dashboard filters, sorts and counts by, per ticker, kept by the transaction that
    writes the ticker's prices, forecasts or model versions (forecaster.storage.dashboard), so
    the summary reads a row per ticker instead of computing every ticker's state per request."""

    __tablename__ = "ticker_states"

    ticker_id: Mapped[int] = mapped_column(
        ForeignKey("tickers.id", ondelete="CASCADE"), primary_key=True
    )
    last_date: Mapped[date | None] = mapped_column(Date)  # newest stored close
    as_of: Mapped[date | None] = mapped_column(Date)  # newest forecast's as-of day
    method: Mapped[str | None] = mapped_column(String(16))
    change: Mapped[float | None]
    mae_ratio: Mapped[float | None]


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
    # The rendered GET /v1/forecasts/<ticker> body (forecaster.documents), written by
    # service.predict_ticker; null on rows stored before it existed (the API renders those).
    document: Mapped[str | None] = mapped_column(Text, deferred=True)

    ticker: Mapped[Ticker] = relationship()
    model_version: Mapped[ModelVersion] = relationship()


# champion (serves) | retired (was champion) | rejected: only on rows written before the registry
# stopped storing rejected versions (it raises ModelRejected and writes nothing instead).
MODEL_STATUSES = ("champion", "retired", "rejected")
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
