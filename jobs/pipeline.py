"""The pipeline run: for each tracked ticker (tickers.tracked, forecaster.universe), one step
(forecaster.refresh.refresh_ticker: fetch -> validate -> retrain -> evaluate -> promote or reject
-> predict the next trading day) under the ticker's lock, with a record of every run and step
(forecaster.storage.runs).

Safety, in order of what can go wrong:
- Two runs (two schedulers, or a scheduler and `stockcast run-now`) never work on the same ticker
  at once: each step holds the ticker's database lock (forecaster.locks) or is skipped. The lock
  is taken by the process doing the step (a worker, see jobs.executors), so it lives exactly as
  long as the writes can happen.
- One ticker's failure (provider, bad data, training) is recorded on its step and the run goes
  on with the next ticker.
- Each stage commits on its own: prices in one transaction, the model version in another, the
  forecast in a third. A run killed anywhere leaves either the previous state or the next one,
  never half of it; the model artifact is written atomically before its row exists, and
  artifacts left without a row are removed by the next step on that ticker.
- Retraining is skipped when the newest model version was already trained up to the last stored
  day (nothing new to learn), so a run that follows another does no duplicate work and a run
  restarted after a crash picks up exactly what is missing.
- Steps run on an executor (settings.executor, jobs.executors): by default a pool of worker
  processes that are replaced every few tickers (a process that trains model after model grows
  without bound, keras-team/keras#17458) and can be killed on timeout or shutdown; or Celery
  workers on other machines. The scheduler itself never trains.
- A run that dies leaves its record in `running`; the next run marks it failed.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from forecaster import locks, migrate, storage
from forecaster.errors import ConfigError, DatabaseUnavailable, StockcastError
from forecaster.providers.base import normalize_ticker
from forecaster.refresh import ProviderFactory, RefreshOptions, StepOutcome
from forecaster.settings import Settings
from forecaster.universe import tracked_universe
from jobs.executors import Executor, InlineExecutor, LocalPool, StepTask
from jobs.executors.base import UNIVERSE, refused

log = logging.getLogger(__name__)

Progress = Callable[[str, StepOutcome | None], None]


def run_status(outcomes: list[StepOutcome]) -> str:
    statuses = [o.status for o in outcomes]
    failed = statuses.count("failed")
    succeeded = statuses.count("succeeded")
    if failed:
        return "partial" if succeeded else "failed"
    if statuses and not succeeded:
        return "skipped"  # e.g. every ticker was being handled by another run
    return "succeeded"


class Heartbeat:
    """Keeps the run's heartbeat_at fresh while work goes on."""

    def __init__(self, sessions: sessionmaker[Session], run_id: int, interval: float) -> None:
        self._sessions = sessions
        self._run_id = run_id
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="stockcast-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                storage.beat(self._sessions, self._run_id)
            except Exception:  # a database blip must not kill the heartbeat
                log.warning("heartbeat failed", exc_info=True)


@dataclass
class RunReport:
    run_id: int
    status: str
    steps: list[StepOutcome]
    reaped: list[int]
    seconds: float
    executor: Executor | None = None  # what ran the steps (its worker figures, for benches)


def make_executor(
    settings: Settings,
    engine: Engine,
    *,
    workers: int | None = None,
    stop: threading.Event | None = None,
    provider_factory: ProviderFactory | None = None,
) -> Executor:
    """The executor settings.executor names (jobs.executors)."""
    kind = settings.executor
    if provider_factory is not None and kind != "inline":
        raise ValueError("a provider_factory can only be used with the inline executor")
    if kind == "inline":
        return InlineExecutor(settings, engine, stop, provider_factory)
    if kind == "celery":
        from jobs.executors.celery_executor import (
            CeleryExecutor,  # Celery is imported only when used
        )

        return CeleryExecutor(settings, stop, engine=engine)
    return LocalPool(settings, workers=workers or settings.workers, stop=stop)


def plan(settings: Settings, symbols: list[str], options: RefreshOptions) -> list[StepTask]:
    """One step per ticker. In universe scope they fetch and store only: the universe step that
    follows trains every ticker at once, then one forecast step per ticker forecasts each."""
    if settings.model_scope == "universe":
        options = replace(options, train=False)
    return [StepTask.for_ticker(symbol, options, settings) for symbol in symbols]


def universe_task(
    sessions: sessionmaker[Session], settings: Settings, symbols: list[str], options: RefreshOptions
) -> StepTask:
    """The universe step, once every ticker's new days are stored: one fit for every tracked
    ticker, whichever tickers this run fetched."""
    with sessions.begin() as s:
        fitted = sorted(set(tracked_universe(s, settings)) | set(symbols))
    return StepTask.for_universe(fitted, options, settings)


def record_failed_run(sessions: sessionmaker[Session], run_id: int, exc: BaseException) -> None:
    """Record why a run ended early (the exception goes on to the caller)."""
    try:
        if isinstance(exc, KeyboardInterrupt):
            code, message = "interrupted", "interrupted"
        elif isinstance(exc, StockcastError):
            code, message = exc.code, str(exc)
        else:
            code, message = "internal_error", f"{type(exc).__name__}: {exc}"
        storage.finish_run(sessions, run_id, "failed", message, code)
    except Exception:
        log.warning("could not record the failed run", exc_info=True)


def run_pipeline(
    settings: Settings,
    tickers: list[str] | tuple[str, ...] | None = None,
    *,
    trigger: str = "cli",
    kind: str = "pipeline",
    fetch: bool = True,
    force_train: bool = False,
    workers: int | None = None,
    provider_factory: ProviderFactory | None = None,
    stop: threading.Event | None = None,
    progress: Progress | None = None,
    today: date | None = None,
    engine: Engine,
) -> RunReport:
    """Run the pipeline once over `tickers` (default: every tracked ticker) and record it.

    The steps run on settings.executor (jobs.executors); `workers` sizes the local pool.
    """
    started = time.perf_counter()
    explicit = [normalize_ticker(t) for t in tickers or ()]  # checked before any work
    options = RefreshOptions(fetch=fetch, force_train=force_train, today=today)
    sessions = storage.make_session_factory(engine)
    executor = make_executor(
        settings, engine, workers=workers, stop=stop, provider_factory=provider_factory
    )
    try:
        try:
            at_head = migrate.is_at_head(engine)
        except OperationalError as exc:
            raise DatabaseUnavailable(
                f"database unreachable: {storage.db_error_summary(exc)}"
            ) from exc
        if not at_head:
            raise ConfigError(
                "the database schema is not at the latest migration; run `stockcast db upgrade`"
            )
        with sessions.begin() as s:  # no tickers given: every tracked one (forecaster.universe)
            symbols = list(dict.fromkeys(explicit)) or tracked_universe(s, settings)
        reaped = storage.reap_stale_runs(sessions, settings.run_stale_seconds)
        run_id = storage.start_run(sessions, kind=kind, trigger=trigger, tickers=symbols)
        log.info(
            "pipeline run started",
            extra={
                "run_id": run_id,
                "trigger": trigger,
                "tickers": len(symbols),
                "executor": executor.name,
            },
        )
        interval = max(1.0, min(30.0, settings.run_stale_seconds / 4))
        outcomes: list[StepOutcome] = []
        step_ids: dict[str, int] = {}

        def step_started(symbol: str) -> None:
            if progress:
                progress(symbol, None)
            step_ids[symbol] = storage.start_step(sessions, run_id, symbol)

        def step_finished(outcome: StepOutcome, seconds: float) -> None:
            storage.finish_step(sessions, step_ids.pop(outcome.ticker), outcome, seconds)
            outcomes.append(outcome)
            log.info(
                "pipeline step finished",
                extra={
                    "run_id": run_id,
                    "ticker": outcome.ticker,
                    "status": outcome.status,
                    "seconds": round(seconds, 2),
                    "worker": outcome.worker,
                    "detail": outcome.detail,
                    "error": outcome.error,
                },
            )
            if progress:
                progress(outcome.ticker, outcome)

        try:
            with Heartbeat(sessions, run_id, interval):
                executor.run(plan(settings, symbols, options), step_started, step_finished)
                if settings.model_scope == "universe" and not (stop and stop.is_set()):
                    universe = universe_task(sessions, settings, symbols, options)
                    executor.run([universe], step_started, step_finished)
                    fitted = outcomes[-1] if outcomes and outcomes[-1].ticker == UNIVERSE else None
                    # then each ticker's forecast, fanned out again (unless another run is
                    # fitting the universe: that run forecasts once its versions are registered)
                    if (
                        fitted is not None
                        and fitted.status != "skipped"
                        and not (stop and stop.is_set())
                    ):
                        forecasts = [StepTask.for_forecast(t, settings) for t in universe.symbols]
                        executor.run(forecasts, step_started, step_finished)
        except BaseException as exc:
            record_failed_run(sessions, run_id, exc)
            raise
        status = run_status(outcomes)
        interrupted = stop is not None and stop.is_set()
        if interrupted:  # shut down before every ticker was done: never "succeeded"
            status = "partial" if any(o.status == "succeeded" for o in outcomes) else "failed"
        note, note_code = ("interrupted", "interrupted") if interrupted else (None, None)
        if not interrupted and (line := refused(outcomes)) is not None:
            note, note_code = line, "config_mismatch"  # the run says so in one line
        storage.finish_run(sessions, run_id, status, note, note_code)
        seconds = time.perf_counter() - started
        log.info(
            "pipeline run finished",
            extra={"run_id": run_id, "status": status, "seconds": round(seconds, 2)},
        )
        order = {symbol: i for i, symbol in enumerate(symbols)}  # report in the run's order
        outcomes.sort(key=lambda o: order.get(o.ticker, len(order)))
        return RunReport(run_id, status, outcomes, reaped, seconds, executor)
    finally:
        # A worker killed mid-step (timeout, crash, shutdown) cannot release its ticker's lock.
        with contextlib.suppress(Exception):
            locks.release_dead(engine)
