"""The universe step (STOCKCAST_MODEL_SCOPE=universe): one fit for every tracked ticker, then each
ticker's version registered under that ticker's lock; and the forecast step that follows it for
each ticker.

A universe night is a chord on the executor: every ticker's new days fetched and validated (one
step per ticker, fanned out, nothing trained), then this step once, in one process with all its
cores, then one forecast step per ticker, fanned out again (`forecast_locked`). One universe
fit at a time: the step holds the `universe` lock for its whole length. A ticker another run
holds is left to that run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from forecaster import locks, storage
from forecaster.errors import LockBusy, StockcastError
from forecaster.refresh import RefreshOptions, StepOutcome
from forecaster.service import (
    latest_model_covers_data,
    predict_ticker,
    previous_training,
    register_candidate,
    training_data,
)
from forecaster.settings import Settings

log = logging.getLogger(__name__)

UNIVERSE = "universe"  # the universe step's target
UNIVERSE_LOCK = "universe"  # one universe fit at a time


def refresh_universe_locked(
    settings: Settings, symbols: list[str], options: RefreshOptions, engine: Engine
) -> StepOutcome:
    """`refresh_universe` under the universe lock (a busy lock skips the step)."""
    try:
        lock = locks.acquire(engine, UNIVERSE_LOCK)
    except LockBusy as exc:
        log.info("universe busy", extra={"owner": exc.owner})
        return StepOutcome(
            UNIVERSE, status="skipped", notes=["another run is fitting the universe"]
        )
    try:
        with locks.KeepFresh(lock):
            return refresh_universe(settings, symbols, options, engine)
    finally:
        try:
            lock.release()
        except Exception:
            log.warning("could not release the universe lock", exc_info=True)


def refresh_universe(
    settings: Settings, symbols: list[str], options: RefreshOptions, engine: Engine
) -> StepOutcome:
    """Fit the universe network on every ticker and register each ticker's version. A fit that
    fails fails the step, and each ticker's champion still forecasts the next session (as a
    ticker whose own training failed keeps its champion)."""
    outcome = StepOutcome(UNIVERSE)
    sessions = storage.make_session_factory(engine)
    try:
        universe, previous, stale = {}, {}, False
        warm_from = None  # the universe artifact a warm start reads

        def needs_artifact(record: dict[str, Any]) -> bool:
            """A ticker's own network (trained outside the universe, it warm-starts from it),
            or the first universe one (a warm start takes one ticker's ensemble): not the
            shared network's bytes once per ticker."""
            return warm_from is None or "universe" not in (record["backtest"] or {})

        with sessions.begin() as s:
            for symbol in symbols:
                try:
                    row, prices = training_data(s, symbol)
                except StockcastError as exc:
                    outcome.notes.append(f"{symbol}: {exc}")
                    continue
                if row.suspect_day is not None:  # out of the fit; persistence serves it
                    outcome.notes.append(
                        f"{symbol}: suspect move on {row.suspect_day}: not trained"
                    )
                    continue
                universe[symbol] = prices
                record = previous_training(s, row, needs_artifact)
                if record is not None and "universe" in (record["backtest"] or {}):
                    warm_from = warm_from or record["artifact"]
                previous[symbol] = record
                stale = stale or latest_model_covers_data(s, settings, symbol) is None
        if not (stale or options.force_train):
            outcome.notes.append("no new prices since the universe was trained: retraining skipped")
            trained_symbols: list[str] = []
        else:
            try:
                trained_symbols = _fit_and_register(
                    engine, sessions, settings, universe, previous, outcome
                )
            except Exception as exc:  # the fit failed: tonight the champions forecast
                _failed(outcome, exc)
                outcome.notes.append("the universe fit failed: each ticker's champion forecasts")
                trained_symbols = []
        outcome.notes.append(f"{len(trained_symbols)} ticker(s) registered")
        if trained_symbols:
            outcome.promoted = True
    except Exception as exc:
        _failed(outcome, exc)
    return outcome


def forecast_locked(settings: Settings, symbol: str, engine: Engine) -> StepOutcome:
    """The forecast step of a universe night: the ticker's next-session forecast from its
    champion (the version the universe step just registered, or the one it keeps), under the
    ticker's lock, in one transaction. A ticker another run holds is skipped."""
    outcome = StepOutcome(symbol)
    sessions = storage.make_session_factory(engine)
    try:
        with locks.hold(engine, locks.ticker_lock_name(symbol)), sessions.begin() as s:
            prediction = predict_ticker(s, settings, symbol)
            outcome.notes.append(
                f"forecast for {prediction.target_date} stored ({prediction.method})"
            )
    except LockBusy:
        outcome.status = "skipped"
        outcome.notes.append("another run holds it: no forecast")
    except Exception as exc:
        _failed(outcome, exc)
    return outcome


def _failed(outcome: StepOutcome, exc: Exception) -> None:
    """Record why the universe step or a forecast step failed (the run goes on)."""
    outcome.status = "failed"
    if isinstance(exc, OperationalError):
        outcome.error_code = "database_unavailable"
        outcome.error = f"database unavailable: {storage.db_error_summary(exc)}"
    elif isinstance(exc, StockcastError):
        outcome.error, outcome.error_code = str(exc), exc.code
    else:  # a training or library bug
        log.error("step crashed", extra={"target": outcome.ticker}, exc_info=exc)
        outcome.error, outcome.error_code = f"{type(exc).__name__}: {exc}", "internal_error"


def _fit_and_register(
    engine: Engine,
    sessions: sessionmaker[Session],
    settings: Settings,
    universe: dict[str, Any],
    previous: dict[str, Any],
    outcome: StepOutcome,
) -> list[str]:
    """One universe fit (no transaction open while it trains), then each ticker's version
    registered under its lock; the tickers registered."""
    from forecaster.universe_training import train_universe  # TensorFlow only when it trains

    trained = train_universe(universe, settings, previous)
    outcome.fit_seconds = round(trained.seconds, 3)
    served = sum(o.choice.method == "lstm" for o in trained.outcomes.values())
    info = trained.info
    how = (
        "quiet night: backtest reused, networks fine-tuned"
        if info.get("warm_start")
        else f"{len(info.get('backtest_origins') or [])}-fold universe backtest"
    )
    outcome.notes.append(
        f"universe fit on {info.get('tickers', 0)} tickers, {info.get('windows', 0)} "
        f"windows, {info.get('members', 0)} networks, through "
        f"{info.get('trained_through', '-')} ({how}): the network serves {served}"
    )
    for symbol, error in trained.failed.items():
        outcome.notes.append(f"{symbol}: not trained: {error}")
    registered = []
    for symbol, result in trained.outcomes.items():
        register = partial(_register_one, settings=settings, symbol=symbol, result=result)
        if _under_lock(engine, sessions, symbol, outcome, "not registered", register):
            registered.append(symbol)
    return registered


def _register_one(session: Session, settings: Settings, symbol: str, result: Any) -> None:
    register_candidate(session, settings, symbol, result)


def _under_lock(
    engine: Engine,
    sessions: sessionmaker[Session],
    symbol: str,
    outcome: StepOutcome,
    missed: str,
    write: Callable[[Session], object],
) -> bool:
    """`write` in one transaction under the ticker's lock; a busy lock or a domain error is a
    note on the universe step ("<symbol>: ... <missed>"), and the other tickers go on."""
    try:
        with locks.hold(engine, locks.ticker_lock_name(symbol)), sessions.begin() as s:
            write(s)
        return True
    except LockBusy:
        outcome.notes.append(f"{symbol}: another run holds it: {missed}")
    except StockcastError as exc:
        outcome.notes.append(f"{symbol}: {missed}: {exc}")
    except Exception as exc:  # one ticker's failure (a disk error ...) must not stop the rest
        # The notes are the step's public detail: the cause's text (paths, SQL) goes to the log.
        log.exception("universe step: one ticker failed", extra={"ticker": symbol})
        outcome.notes.append(f"{symbol}: {missed}: unexpected {type(exc).__name__}")
    return False
