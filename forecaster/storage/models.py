"""Model versions and their predictions: the champion, version numbers, forecasts upserted on
(ticker_id, as_of_date), the newest forecast and its stored document, the forecast history."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import (
    Connection,
    and_,
    bindparam,
    delete,
    func,
    select,
)
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import (
    Session,
    aliased,
)

from forecaster.storage.schema import (
    ModelArtifact,
    ModelVersion,
    Prediction,
    Price,
    SharedNetwork,
    Ticker,
    utcnow,
)
from forecaster.storage.touch import touch
from forecaster.storage.upsert import upsert


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
    upsert(session, Prediction, [row], ["ticker_id", "as_of_date"])
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
# ticker's newest prediction, through the unique indexes on tickers.symbol and predictions
# (ticker_id, as_of_date). Core tables, so the row comes back as plain values with no ORM
# identity map or loading.
_predictions, _tickers = Prediction.__table__, Ticker.__table__
LATEST_DOCUMENT = (
    select(_predictions.c.document)
    .select_from(_predictions.join(_tickers, _tickers.c.id == _predictions.c.ticker_id))
    .where(_tickers.c.symbol == bindparam("symbol"))
    .order_by(_predictions.c.as_of_date.desc())
    .limit(1)
)


def latest_document(connection: Connection, symbol: str) -> tuple[str | None] | None:
    """(the stored forecast document, or None for a row without one,) of the ticker's newest
    prediction; None when it has none. The document is current: forecaster.predict renders it
    again when its version is retired (forecaster.registry), in that transaction."""
    row = connection.execute(LATEST_DOCUMENT, {"symbol": symbol}).first()
    return None if row is None else (row[0],)


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


def delete_unused_networks(session: Session) -> int:
    """Delete the shared networks no artifact uses any more (in the caller's transaction, inside
    a savepoint). A network another transaction has just started to use stays: the foreign key
    (or its lock, forecaster.artifacts._share) refuses its delete, the savepoint takes it back,
    and a later call collects it."""
    used = select(ModelArtifact.model_version_id).where(
        ModelArtifact.shared_sha256 == SharedNetwork.sha256
    )
    try:
        with session.begin_nested():
            deleted = session.execute(delete(SharedNetwork).where(~used.exists()))
    except (IntegrityError, OperationalError):  # in use meanwhile, or two collectors deadlocked
        return 0
    return int(deleted.rowcount or 0)  # type: ignore[attr-defined]
