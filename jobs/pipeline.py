"""The pipeline run: for each tracked ticker (tickers.tracked, forecaster.universe), one step
(forecaster.service.refresh_ticker: fetch -> validate -> retrain -> evaluate -> promote or reject
-> predict the next trading day) under the ticker's lock, with a record of every run and step
(jobs.records).

Safety, in order of what can go wrong:
- Two runs (two schedulers, or a scheduler and `stockcast run-now`) never work on the same ticker
  at once: each step holds the ticker's database lock (forecaster.locks) or is skipped. The lock
  is taken by the process doing the step (its child, see jobs.runner), so it lives exactly as
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
- By default each ticker's work runs in a fresh child process (settings.pipeline_isolation,
  jobs.runner): a long-lived scheduler that trains model after model in one process grows
  without bound (keras-team/keras#17458), and a child can be killed on timeout or shutdown.
- A run that dies leaves its record in `running`; the next run marks it failed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from functools import partial

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from forecaster import migrate, storage
from forecaster.errors import ConfigError, DatabaseUnavailable
from forecaster.providers.base import normalize_ticker
from forecaster.service import (
    ProviderFactory,
    RefreshOptions,
    StepOutcome,
    refresh_ticker_locked,
)
from forecaster.settings import Settings
from forecaster.universe import tracked_universe
from jobs import records
from jobs.records import Heartbeat
from jobs.runner import run_in_child

log = logging.getLogger(__name__)

Progress = Callable[[str, StepOutcome | None], None]
Step = Callable[[str], StepOutcome]  # one ticker's work, wherever it runs


@dataclass
class RunReport:
    run_id: int
    status: str
    steps: list[StepOutcome]
    reaped: list[int]
    seconds: float


def run_pipeline(
    settings: Settings,
    tickers: list[str] | tuple[str, ...] | None = None,
    *,
    trigger: str = "cli",
    kind: str = "pipeline",
    fetch: bool = True,
    force_train: bool = False,
    isolation: str | None = None,
    provider_factory: ProviderFactory | None = None,
    stop: threading.Event | None = None,
    progress: Progress | None = None,
    today: date | None = None,
    engine: Engine | None = None,
) -> RunReport:
    """Run the pipeline once over `tickers` (default: every tracked ticker) and record it."""
    started = time.perf_counter()
    isolation = isolation or settings.pipeline_isolation
    if provider_factory is not None and isolation != "inline":
        raise ValueError("a provider_factory can only be used with inline isolation")
    explicit = [normalize_ticker(t) for t in tickers or ()]  # checked before any work
    options = RefreshOptions(fetch=fetch, force_train=force_train, today=today)
    own_engine = engine is None
    engine = engine or storage.make_engine(
        settings.resolved_database_url, timeout=settings.db_timeout_seconds
    )
    sessions = storage.make_session_factory(engine)
    step: Step
    if isolation == "process":
        step = partial(run_in_child, settings, options=options, stop=stop)
    else:
        step = partial(
            refresh_ticker_locked,
            settings,
            options=options,
            provider_factory=provider_factory,
            engine=engine,
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
        reaped = records.reap_stale_runs(sessions, settings.run_stale_seconds)
        run_id = records.start_run(sessions, kind=kind, trigger=trigger, tickers=symbols)
        log.info(
            "pipeline run started",
            extra={
                "run_id": run_id,
                "trigger": trigger,
                "tickers": symbols,
                "isolation": isolation,
            },
        )
        interval = max(1.0, min(30.0, settings.run_stale_seconds / 4))
        outcomes: list[StepOutcome] = []
        try:
            with Heartbeat(sessions, run_id, interval):
                for symbol in symbols:
                    if progress:
                        progress(symbol, None)
                    step_id = records.start_step(sessions, run_id, symbol)
                    t0 = time.perf_counter()
                    if stop is not None and stop.is_set():
                        outcome = StepOutcome(symbol, status="skipped", notes=["run interrupted"])
                    else:
                        outcome = step(symbol)  # takes the ticker's lock where it runs
                    records.finish_step(sessions, step_id, outcome, time.perf_counter() - t0)
                    outcomes.append(outcome)
                    log.info(
                        "pipeline step finished",
                        extra={
                            "run_id": run_id,
                            "ticker": symbol,
                            "status": outcome.status,
                            "seconds": round(time.perf_counter() - t0, 2),
                            "detail": outcome.detail,
                            "error": outcome.error,
                        },
                    )
                    if progress:
                        progress(symbol, outcome)
        except BaseException as exc:
            try:
                code = "interrupted" if isinstance(exc, KeyboardInterrupt) else "internal_error"
                records.finish_run(sessions, run_id, "failed", f"{type(exc).__name__}: {exc}", code)
            except Exception:
                log.warning("could not record the failed run", exc_info=True)
            raise
        status = records.run_status(outcomes)
        interrupted = stop is not None and stop.is_set()
        if interrupted:  # shut down before every ticker was done: never "succeeded"
            status = "partial" if any(o.status == "succeeded" for o in outcomes) else "failed"
        records.finish_run(
            sessions,
            run_id,
            status,
            "interrupted" if interrupted else None,
            "interrupted" if interrupted else None,
        )
        seconds = time.perf_counter() - started
        log.info(
            "pipeline run finished",
            extra={"run_id": run_id, "status": status, "seconds": round(seconds, 2)},
        )
        return RunReport(run_id, status, outcomes, reaped, seconds)
    finally:
        if own_engine:
            engine.dispose()
