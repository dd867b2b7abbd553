"""The per-ticker refresh a pipeline step runs: under the ticker's lock, fetch its new days,
retrain when they are not covered (forecaster.service), promote or reject, and store the
forecast. Each stage commits on its own; no transaction stays open while a network trains.
Failures are recorded on the step's outcome, never raised.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from forecaster import locks, storage
from forecaster.calendar import exchange_today
from forecaster.errors import (
    LockBusy,
    NoChampion,
    StockcastError,
)
from forecaster.ingest import IntegrityRules, backfill_ticker
from forecaster.predict import predict_ticker, require_ticker
from forecaster.providers import provider_for
from forecaster.providers.base import PriceProvider
from forecaster.service import (
    latest_model_covers_data,
    previous_training,
    register_candidate,
    training_data,
    training_note,
)
from forecaster.settings import Settings

log = logging.getLogger(__name__)

# (symbol, provider name stored for it or None) -> provider to fetch from, or None for no fetch
ProviderFactory = Callable[[str, str | None], PriceProvider | None]


@dataclass(frozen=True)
class RefreshOptions:
    """How `refresh_ticker` works on a ticker. Plain data: it crosses into the step's child."""

    fetch: bool = True  # poll the ticker's provider for new days first
    # retrain and forecast after fetching (universe scope: the universe step does both)
    train: bool = True
    force_train: bool = False  # retrain even if the newest model already covers the stored days
    today: date | None = None  # fetch up to this day (default: today in the schedule's zone)


@dataclass
class StepOutcome:
    """What one ticker's step did. Plain data: it crosses the process boundary from the child."""

    ticker: str
    status: str = "succeeded"  # succeeded | failed | skipped
    rows_fetched: int | None = None
    rows_inserted: int | None = None
    rows_rejected: int | None = None
    model_version_id: int | None = None  # the version trained in this step, if any
    model_version: int | None = None
    promoted: bool | None = None
    forecast: dict[str, Any] | None = None  # as_of, target_date, predicted_close, model_version
    notes: list[str] = field(default_factory=list)
    error: str | None = None  # full detail, for logs and operators
    error_code: str | None = None  # what a public client may learn (forecaster.errors)
    worker: str | None = None  # the opaque name of the worker that ran it (jobs.executors)
    fit_seconds: float | None = None  # time spent fitting networks (training), if any

    @property
    def detail(self) -> str | None:
        return "; ".join(self.notes) or None


def refresh_ticker_locked(
    settings: Settings,
    symbol: str,
    options: RefreshOptions | None = None,
    *,
    provider_factory: ProviderFactory | None = None,
    engine: Engine,
) -> StepOutcome:
    """`refresh_ticker` under the ticker's lock, taken by the process that does the writes.

    The lock lives and dies with that process (a step's child, a Celery task, the CLI): if the
    process that started the step dies, the worker still holds the lock until it ends, so no
    other run can train, promote or remove artifacts of the same ticker meanwhile. A busy lock
    skips the ticker: another run is on it.
    """
    try:
        lock = locks.acquire(engine, locks.ticker_lock_name(symbol))
    except LockBusy as exc:
        # The step's detail is public (GET /v1/runs): the owner (host:pid) goes to the log only.
        log.info("ticker busy", extra={"ticker": symbol, "owner": exc.owner})
        return StepOutcome(
            symbol, status="skipped", notes=["another run holds this ticker: left to that run"]
        )
    except OperationalError as exc:
        return StepOutcome(
            symbol,
            status="failed",
            error=f"database unavailable: {storage.db_error_summary(exc)}",
            error_code="database_unavailable",
        )
    try:
        with locks.KeepFresh(lock):
            return refresh_ticker(
                settings, symbol, options, provider_factory=provider_factory, engine=engine
            )
    finally:
        try:
            lock.release()
        except Exception:  # the row expires, or the server drops a dead connection's lock
            log.warning("could not release the ticker lock", exc_info=True)


def _fetch_new_days(
    session: Session,
    settings: Settings,
    symbol: str,
    options: RefreshOptions,
    provider_factory: ProviderFactory | None,
    outcome: StepOutcome,
) -> None:
    """The refresh's first stage: the days after the last stored one, from the ticker's provider."""
    row = storage.get_ticker(session, symbol)
    stored = row.provider if row is not None else None
    factory = provider_factory or (lambda _symbol, name: provider_for(settings, name))
    source = factory(symbol, stored)
    if source is None:
        outcome.notes.append(f"{stored} ticker: nothing to fetch")
        return
    end = options.today or exchange_today(settings)
    rules = IntegrityRules.from_settings(settings)
    fetched = backfill_ticker(session, source, symbol, None, end, rules=rules)
    outcome.rows_fetched = fetched.fetched
    outcome.rows_inserted = fetched.inserted + fetched.updated
    outcome.rows_rejected = fetched.rejected
    if fetched.revised_from is not None:
        outcome.notes.append(
            f"history_revised: {source.name} changed stored prices from {fetched.revised_from}; "
            f"the whole history was fetched again ({fetched.inserted} days) and a full "
            "backtest follows"
        )
    else:
        outcome.notes.append(
            f"{source.name}: {fetched.inserted} new, {fetched.updated} updated day(s)"
            + (f", {fetched.rejected} rejected" if fetched.rejected else "")
        )
    if fetched.actions:
        outcome.notes.append(f"{fetched.actions} corporate action(s) recorded")
    if fetched.suspect:
        outcome.notes.append(f"suspect: {fetched.suspect}")
    if fetched.cleared:
        outcome.notes.append(f"suspect cleared: {fetched.cleared}")
    if fetched.rejected_summary:
        log.warning("rows rejected", extra={"ticker": symbol, "detail": fetched.rejected_summary})


def _forecast(
    session: Session, settings: Settings, row: storage.Ticker, outcome: StepOutcome
) -> None:
    """The refresh's last stage: the champion's forecast of the next session, stored."""
    try:
        p = predict_ticker(session, settings, row)
    except NoChampion:
        outcome.notes.append("no champion model: no forecast")
        return
    champion = storage.champion(session, p.ticker_id)
    outcome.forecast = {
        "as_of": p.as_of_date.isoformat(),
        "target_date": p.target_date.isoformat(),
        "predicted_close": round(p.predicted_close, 4),
        "method": p.method,
        "model_version": champion.version if champion else None,
    }
    outcome.notes.append(
        f"forecast {p.target_date}: {p.predicted_close:.2f} "
        f"({p.method}, v{outcome.forecast['model_version']})"
    )


def refresh_ticker(
    settings: Settings,
    symbol: str,
    options: RefreshOptions | None = None,
    *,
    provider_factory: ProviderFactory | None = None,
    engine: Engine,
) -> StepOutcome:
    """One ticker from new prices to a stored forecast: fetch -> validate -> retrain -> evaluate
    -> promote or reject -> predict. The caller holds the ticker's lock (refresh_ticker_locked).

    Each stage commits on its own and no transaction stays open while the network trains.
    Failures are recorded on the outcome, never raised: one ticker must not stop the others.
    """
    from forecaster.training import train  # looked up per call: tests replace it

    options = options or RefreshOptions()
    outcome = StepOutcome(symbol)
    sessions = storage.make_session_factory(engine)
    try:
        if options.fetch:
            with sessions.begin() as s:
                _fetch_new_days(s, settings, symbol, options, provider_factory, outcome)

        if not options.train:
            with sessions.begin() as s:
                require_ticker(s, symbol)
            outcome.notes.append("stored: the universe step trains and forecasts")
            return outcome

        with sessions.begin() as s:
            ticker_row = require_ticker(s, symbol)
            covering = (
                None if options.force_train else latest_model_covers_data(s, settings, ticker_row)
            )
            covering_version = covering.version if covering is not None else None
            universe_scope = settings.model_scope == "universe"  # the universe step trains
            suspect = ticker_row.suspect_day
            if covering_version is None and not universe_scope and suspect is None:
                _, prices = training_data(s, ticker_row)
                previous = previous_training(s, ticker_row)
        if universe_scope:
            outcome.notes.append("universe scope: the universe step trains (`run-now`)")
        elif suspect is not None and covering_version is None:
            outcome.notes.append(
                f"training waits: suspect move on {suspect} (`stockcast tickers resolve`)"
            )
        elif covering_version is not None:
            outcome.notes.append(
                f"no new prices since v{covering_version} was trained: retraining skipped"
            )
        else:
            # no transaction open while the network trains
            trained = train(prices, settings, ticker=symbol, previous=previous)
            outcome.fit_seconds = round(trained.train_seconds, 3)
            with sessions.begin() as s:
                result = register_candidate(s, settings, ticker_row, trained)
                version = result.model_version
                outcome.model_version_id = version.id
                outcome.model_version = version.version
                outcome.promoted = result.promoted
            outcome.notes.append(training_note(result, trained))

        with sessions.begin() as s:
            _forecast(s, settings, ticker_row, outcome)
    except StockcastError as exc:
        outcome.status, outcome.error, outcome.error_code = "failed", str(exc), exc.code
    except OperationalError as exc:
        outcome.status, outcome.error_code = "failed", "database_unavailable"
        outcome.error = f"database unavailable: {storage.db_error_summary(exc)}"
    except Exception as exc:  # a training or library bug must not stop the other tickers
        log.exception("pipeline step crashed", extra={"ticker": symbol})
        outcome.status, outcome.error = "failed", f"{type(exc).__name__}: {exc}"
        outcome.error_code = "internal_error"
    return outcome
