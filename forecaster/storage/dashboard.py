"""The dashboard's read model: a compact state of every ticker (to filter, sort and count the
whole universe in one statement), the details of one page of tickers, and the newest run.

Each ticker's state is kept on write: the transaction that writes its prices, forecasts or
model versions stores it again in `ticker_states` (a commit hook of forecaster.storage.touch),
so a summary of 5,000 tickers reads 5,000 rows and one index seek each (the newest pipeline
step, which the run writes in its own transactions); the details are read for the page only.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, NamedTuple

from sqlalchemy import and_, bindparam, func, select
from sqlalchemy.orm import Session, aliased

from forecaster.storage.schema import (
    JobRun,
    JobStep,
    ModelVersion,
    Prediction,
    Price,
    Ticker,
    TickerStateRow,
)
from forecaster.storage.touch import on_commit
from forecaster.storage.upsert import upsert


class TickerState(NamedTuple):
    """What the dashboard filters, sorts and counts by, for one ticker (a tuple: 5,000 of them
    are built per summary request)."""

    id: int
    symbol: str
    name: str | None
    tracked: bool
    suspect: bool
    last_date: date | None  # newest stored close
    as_of: date | None  # newest forecast's as-of day
    method: str | None  # what made the newest forecast, else what the champion serves
    change: float | None  # newest forecast / its last close - 1
    mae_ratio: float | None  # backtest MAE vs persistence of that forecast's version (or champion)
    step_status: str | None  # the ticker's newest pipeline step

    def stale(self, last_session: date) -> bool:
        """No forecast, or one made before the last exchange session or the newest close (the
        rule of the summary's `freshness`)."""
        if self.as_of is None:
            return True
        return self.as_of < last_session or (
            self.last_date is not None and self.as_of < self.last_date
        )


def _newest_step() -> Any:
    return (
        select(JobStep.status)
        .where(JobStep.ticker == Ticker.symbol)
        .order_by(JobStep.id.desc())
        .limit(1)
        .correlate(Ticker)
        .scalar_subquery()
    )


# Every ticker's stored state beside its `tickers` row and its newest step, built once (the
# summary runs it on every request); the last column says the ticker has no stored row.
_STORED = select(
    Ticker.id,
    Ticker.symbol,
    Ticker.name,
    Ticker.tracked,
    Ticker.suspect_day.is_not(None),
    TickerStateRow.last_date,
    TickerStateRow.as_of,
    TickerStateRow.method,
    TickerStateRow.change,
    TickerStateRow.mae_ratio,
    _newest_step(),
    TickerStateRow.ticker_id.is_(None),
).outerjoin(TickerStateRow, TickerStateRow.ticker_id == Ticker.id)


def ticker_states(session: Session) -> list[TickerState]:
    """Every ticker's state, by symbol: its stored row (`ticker_states`, kept on write) beside
    its `tickers` row and newest pipeline step (one index seek), in one statement; a ticker
    without a stored row (no data written since migration 0014) is computed."""
    rows = session.connection().execute(_STORED).all()
    out = [TickerState._make(row[:-1]) for row in rows if not row[-1]]
    missing = [row[0] for row in rows if row[-1]]
    if missing:
        out.extend(computed_states(session, missing))
    out.sort(key=lambda t: t.symbol)  # in Python: the same order on every database's collation
    return out


def _computed_statement() -> Any:
    """The statement of `computed_states`, built once (building it costs ten times running it
    for one ticker, and a commit that touched a ticker runs it)."""
    T, P = Ticker, Prediction
    newest = (
        select(P.id)
        .where(P.ticker_id == T.id)
        .order_by(P.as_of_date.desc())
        .limit(1)
        .correlate(T)
        .scalar_subquery()
    )
    last_day = (
        select(Price.date)
        .where(Price.ticker_id == T.id)
        .order_by(Price.date.desc())
        .limit(1)
        .correlate(T)
        .scalar_subquery()
    )
    base = (
        select(
            T.id,
            T.symbol,
            T.name,
            T.tracked,
            T.suspect_day,
            last_day.label("last_date"),
            newest.label("prediction_id"),
            _newest_step().label("step_status"),
        )
        .where(T.id.in_(bindparam("ids", expanding=True)))
        .subquery("base")
    )
    made_by = aliased(ModelVersion)
    champion = aliased(ModelVersion)
    return (
        select(
            base.c.id,
            base.c.symbol,
            base.c.name,
            base.c.tracked,
            base.c.suspect_day,
            base.c.last_date,
            base.c.step_status,
            P.as_of_date,
            P.method,
            P.predicted_close,
            P.last_close,
            made_by.mae_ratio,
            champion.method,
            champion.mae_ratio,
        )
        .outerjoin(P, P.id == base.c.prediction_id)
        .outerjoin(made_by, made_by.id == P.model_version_id)
        .outerjoin(champion, and_(champion.ticker_id == base.c.id, champion.status == "champion"))
    )


_COMPUTED = _computed_statement()


def computed_states(session: Session, ids: Collection[int]) -> list[TickerState]:
    """The state of the tickers `ids` computed from their prices, forecasts and versions: a
    few index seeks per ticker (each "newest" is an ORDER BY ... DESC LIMIT 1 on an index, which
    SQLite answers with one seek where max() would read a ticker's whole index range)."""
    rows = session.execute(_COMPUTED, {"ids": list(ids)}).tuples()
    return [
        TickerState(
            tid,
            symbol,
            name,
            bool(tracked),
            suspect_day is not None,
            last_date,
            as_of,
            method or champion_method,
            predicted / last_close - 1.0 if predicted is not None and last_close else None,
            ratio if method is not None else champion_ratio,
            step_status,
        )
        for (
            tid,
            symbol,
            name,
            tracked,
            suspect_day,
            last_date,
            step_status,
            as_of,
            method,
            predicted,
            last_close,
            ratio,
            champion_method,
            champion_ratio,
        ) in rows
    ]


def store_states(session: Session, touched: set[int]) -> None:
    """Keep the stored state of the tickers a transaction touched (a commit hook of
    forecaster.storage.touch), in that transaction."""
    rows = [
        {
            "ticker_id": state.id,
            "last_date": state.last_date,
            "as_of": state.as_of,
            "method": state.method,
            "change": state.change,
            "mae_ratio": state.mae_ratio,
        }
        for state in computed_states(session, touched)
    ]
    if rows:
        upsert(session, TickerStateRow, rows, ["ticker_id"])


on_commit(store_states)


@dataclass(frozen=True)
class LastRun:
    run_id: int
    kind: str
    trigger: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    tickers: int
    failed: int  # its steps that failed


def last_run(session: Session) -> LastRun | None:
    """The newest run (a night, or an operator's run-now), with its failed steps counted."""
    run = session.scalars(
        select(JobRun).order_by(JobRun.started_at.desc(), JobRun.id.desc()).limit(1)
    ).first()
    if run is None:
        return None
    failed = session.scalar(
        select(func.count())
        .select_from(JobStep)
        .where(JobStep.run_id == run.id, JobStep.status == "failed")
    )
    return LastRun(
        run_id=run.id,
        kind=run.kind,
        trigger=run.trigger,
        status=run.status,
        started_at=run.started_at,
        finished_at=run.finished_at,
        tickers=len(run.tickers or []),
        failed=int(failed or 0),
    )


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


def dashboard_rows(session: Session, ids: Sequence[int], recent: int = 30) -> list[DashboardRow]:
    """The details of the tickers `ids` (one page), in that order. Each query is bounded by the
    page, so 5,000 tickers cost what 50 do."""
    if not ids:
        return []
    ids = list(ids)
    # Correlated max(): an index seek per ticker on (ticker_id, date), never a scan of prices.
    last_day = select(func.max(Price.date)).where(Price.ticker_id == Ticker.id).scalar_subquery()
    found = {
        t.id: (t, last)
        for t, last in session.execute(select(Ticker, last_day).where(Ticker.id.in_(ids))).tuples()
    }
    page = [found[i] for i in ids if i in found]

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
    return rows
