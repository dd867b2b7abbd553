"""The pipeline: for each tracked ticker, fetch -> validate -> retrain -> evaluate -> promote or
reject -> predict the next trading day, with a record of every run and step.

Safety, in order of what can go wrong:
- Two runs (two schedulers, or a scheduler and `stockcast run-now`) never work on the same ticker
  at once: each step holds the ticker's database lock (forecaster.locks) or is skipped.
- One ticker's failure (provider, bad data, training) is recorded on its step and the run goes
  on with the next ticker.
- Each stage commits on its own: prices in one transaction, the model version in another, the
  forecast in a third. A run killed anywhere leaves either the previous state or the next one,
  never half of it; the model artifact is written atomically before its row exists, and
  artifacts left without a row are removed by the next step on that ticker.
- Retraining is skipped when the newest model version was already trained up to the last stored
  day (nothing new to learn), so a run that follows another does no duplicate work and a run
  restarted after a crash picks up exactly what is missing.
- By default each ticker's work runs in a fresh child process (settings.pipeline_isolation):
  a long-lived scheduler that trains model after model in one process grows without bound
  (keras-team/keras#17458), and a child can be killed on timeout or shutdown without harm.
- A run that dies leaves its record in `running`; the next run marks it failed.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from forecaster import migrate, registry, service, storage
from forecaster.errors import ConfigError, DatabaseUnavailable, LockBusy, NoChampion, StockcastError
from forecaster.locks import HeldLock, acquire, owner_id, ticker_lock_name
from forecaster.providers import PriceProvider, get_provider
from forecaster.providers.base import normalize_ticker
from forecaster.settings import Settings
from jobs import records
from jobs.records import StepOutcome

log = logging.getLogger(__name__)

# (symbol, provider name stored for it or None) -> provider to fetch from, or None for no fetch
ProviderFactory = Callable[[str, str | None], PriceProvider | None]
Progress = Callable[[str, StepOutcome | None], None]


@dataclass
class RunReport:
    run_id: int
    status: str
    steps: list[StepOutcome]
    reaped: list[int]
    seconds: float


def provider_for(settings: Settings, stored_provider: str | None) -> PriceProvider | None:
    """Where a ticker's new prices come from: the provider it was backfilled with, else the default.

    A CSV ticker has nothing to poll (its data arrives through `stockcast backfill --provider
    csv`), so it is retrained on what is stored.
    """
    name = stored_provider or settings.default_provider
    if name == "csv":
        return None
    return get_provider(name, settings)


def exchange_zone(settings: Settings) -> ZoneInfo:
    try:
        return ZoneInfo(settings.schedule_timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"unknown time zone {settings.schedule_timezone!r}") from exc


def exchange_today(settings: Settings, now: datetime | None = None) -> date:
    zone = exchange_zone(settings)
    return (now.astimezone(zone) if now else datetime.now(zone)).date()


# --------------------------------------------------------------------------- one ticker


def process_ticker(
    settings: Settings,
    symbol: str,
    *,
    fetch: bool = True,
    force_train: bool = False,
    provider_factory: ProviderFactory | None = None,
    engine: Engine | None = None,
    today: date | None = None,
) -> StepOutcome:
    """One ticker from new prices to a stored forecast. The caller holds the ticker's lock."""
    from forecaster.training import train

    outcome = StepOutcome(symbol)
    own_engine = engine is None
    engine = engine or storage.make_engine(settings.resolved_database_url)
    sessions = storage.make_session_factory(engine)
    try:
        if fetch:
            with sessions.begin() as s:
                row = storage.get_ticker(s, symbol)
                stored = row.provider if row is not None else None
                factory = provider_factory or (lambda _symbol, name: provider_for(settings, name))
                source = factory(symbol, stored)
                if source is None:
                    outcome.notes.append(f"{stored} ticker: nothing to fetch")
                else:
                    end = today or exchange_today(settings)
                    fetched = service.backfill_ticker(s, source, symbol, None, end)
                    outcome.rows_fetched = fetched.fetched
                    outcome.rows_inserted = fetched.inserted + fetched.updated
                    outcome.rows_rejected = fetched.rejected
                    outcome.notes.append(
                        f"{source.name}: {fetched.inserted} new, {fetched.updated} updated day(s)"
                        + (f", {fetched.rejected} rejected" if fetched.rejected else "")
                    )
                    if fetched.rejected_summary:
                        log.warning(
                            "rows rejected",
                            extra={"ticker": symbol, "detail": fetched.rejected_summary},
                        )

        with sessions.begin() as s:
            ticker_row = service.require_ticker(s, symbol)
            registry.remove_orphans(s, settings, ticker_row)  # safe: we hold the ticker's lock
            covering = None if force_train else service.latest_model_covers_data(s, symbol)
            covering_version = covering.version if covering is not None else None
            if covering_version is None:  # prices are read only when a model will be trained
                _, prices = service.training_data(s, symbol)
        if covering_version is not None:
            outcome.notes.append(
                f"no new prices since v{covering_version} was trained: retraining skipped"
            )
        else:
            trained = train(prices, settings, ticker=symbol)  # no transaction open meanwhile
            with sessions.begin() as s:
                result = service.register_candidate(s, settings, symbol, trained, prices)
                version = result.model_version
                outcome.model_version_id = version.id
                outcome.model_version = version.version
                outcome.promoted = result.promoted
            verdict = "champion" if result.promoted else f"rejected ({result.reason})"
            outcome.notes.append(
                f"trained v{version.version} in {result.train_seconds:.1f}s: MAE ratio "
                f"{version.mae_ratio:.4f} vs persistence -> {verdict}"
            )

        with sessions.begin() as s:
            try:
                p = service.predict_ticker(s, settings, symbol)
            except NoChampion:
                outcome.notes.append("no champion model: no forecast")
            else:
                champion = storage.champion(s, p.ticker_id)
                outcome.forecast = {
                    "as_of": p.as_of_date.isoformat(),
                    "target_date": p.target_date.isoformat(),
                    "predicted_close": round(p.predicted_close, 4),
                    "model_version": champion.version if champion else None,
                }
                outcome.notes.append(
                    f"forecast {p.target_date}: {p.predicted_close:.2f} "
                    f"(v{outcome.forecast['model_version']})"
                )
    except StockcastError as exc:
        outcome.status, outcome.error = "failed", str(exc)
    except OperationalError as exc:
        outcome.status = "failed"
        outcome.error = f"database unavailable: {storage.db_error_summary(exc)}"
    except Exception as exc:  # a training or library bug must not stop the other tickers
        log.exception("pipeline step crashed", extra={"ticker": symbol})
        outcome.status, outcome.error = "failed", f"{type(exc).__name__}: {exc}"
    finally:
        if own_engine:
            engine.dispose()
    return outcome


def _child_main(
    conn: object, settings: Settings, symbol: str, fetch: bool, force: bool, today: date | None
) -> None:
    """Entry point of the per-ticker child process: do the step, send back the outcome."""
    from forecaster.logs import configure_logging

    configure_logging(settings.log_level, settings.log_format)
    try:
        outcome = process_ticker(settings, symbol, fetch=fetch, force_train=force, today=today)
    except BaseException as exc:  # KeyboardInterrupt included: report, then exit
        outcome = StepOutcome(symbol, status="failed", error=f"{type(exc).__name__}: {exc}")
    conn.send(outcome)  # type: ignore[attr-defined]
    conn.close()  # type: ignore[attr-defined]


def _run_in_child(
    settings: Settings,
    symbol: str,
    fetch: bool,
    force: bool,
    stop: threading.Event | None,
    today: date | None,
) -> StepOutcome:
    # Children inherit TensorFlow's C++ log level from the environment at start-up.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    ctx = multiprocessing.get_context("spawn")  # fresh interpreter: no inherited TF/DB state
    reader, writer = ctx.Pipe(duplex=False)
    proc = ctx.Process(
        target=_child_main,
        args=(writer, settings, symbol, fetch, force, today),
        name=f"stockcast-step-{symbol}",
        daemon=True,
    )
    proc.start()
    writer.close()
    deadline = time.monotonic() + settings.step_timeout_seconds
    try:
        while True:
            if reader.poll(0.2):
                try:
                    return reader.recv()
                except EOFError:
                    pass  # the child died while sending: report it as a crash below
            if not proc.is_alive() and not reader.poll(0):
                proc.join()
                return StepOutcome(
                    symbol,
                    status="failed",
                    error=f"step process died (exit code {proc.exitcode}) before reporting",
                )
            if stop is not None and stop.is_set():
                proc.terminate()
                return StepOutcome(symbol, status="failed", error="interrupted: shutting down")
            if time.monotonic() > deadline:
                proc.kill()
                return StepOutcome(
                    symbol,
                    status="failed",
                    error=f"timed out after {settings.step_timeout_seconds}s and was killed",
                )
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
            proc.join()
        reader.close()


# --------------------------------------------------------------------------- heartbeat


class Heartbeat:
    """Keeps the run's heartbeat_at fresh and SQLite lock rows from expiring while work goes on."""

    def __init__(self, sessions: object, run_id: int, interval: float) -> None:
        self._sessions = sessions
        self._run_id = run_id
        self._interval = interval
        self._held: HeldLock | None = None  # the ticker lock of the step under way
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="stockcast-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def track(self, lock: HeldLock | None) -> None:
        self._held = lock

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                records.beat(self._sessions, self._run_id)  # type: ignore[arg-type]
                held = self._held  # one read: the step may finish meanwhile
                if held is not None and not held.refresh():
                    log.error("lost a lock while holding it", extra={"lock": held.name})
            except Exception:  # a database blip must not kill the heartbeat
                log.warning("heartbeat failed", exc_info=True)


# --------------------------------------------------------------------------- a run


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
    """Run the pipeline once over `tickers` (default: settings.tickers) and record it."""
    started = time.perf_counter()
    isolation = isolation or settings.pipeline_isolation
    if provider_factory is not None and isolation != "inline":
        raise ValueError("a provider_factory can only be used with inline isolation")
    symbols = list(dict.fromkeys(normalize_ticker(t) for t in (tickers or settings.tickers)))
    own_engine = engine is None
    engine = engine or storage.make_engine(settings.resolved_database_url)
    sessions = storage.make_session_factory(engine)
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
        lock_ttl = int(max(60.0, interval * 4))
        owner = owner_id()
        outcomes: list[StepOutcome] = []
        try:
            with Heartbeat(sessions, run_id, interval) as heartbeat:
                for symbol in symbols:
                    if progress:
                        progress(symbol, None)
                    step_id = records.start_step(sessions, run_id, symbol)
                    t0 = time.perf_counter()
                    if stop is not None and stop.is_set():
                        outcome = StepOutcome(symbol, status="skipped", notes=["run interrupted"])
                    else:
                        outcome = _locked_step(
                            engine, settings, symbol, owner, lock_ttl, heartbeat,
                            fetch=fetch, force_train=force_train, isolation=isolation,
                            provider_factory=provider_factory, stop=stop, today=today,
                        )  # fmt: skip
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
                records.finish_run(sessions, run_id, "failed", f"{type(exc).__name__}: {exc}")
            except Exception:
                log.warning("could not record the failed run", exc_info=True)
            raise
        status = records.run_status(outcomes)
        interrupted = stop is not None and stop.is_set()
        if interrupted:  # shut down before every ticker was done: never "succeeded"
            status = "partial" if any(o.status == "succeeded" for o in outcomes) else "failed"
        records.finish_run(sessions, run_id, status, "interrupted" if interrupted else None)
        seconds = time.perf_counter() - started
        log.info(
            "pipeline run finished",
            extra={"run_id": run_id, "status": status, "seconds": round(seconds, 2)},
        )
        return RunReport(run_id, status, outcomes, reaped, seconds)
    finally:
        if own_engine:
            engine.dispose()


def _locked_step(
    engine: Engine,
    settings: Settings,
    symbol: str,
    owner: str,
    lock_ttl: int,
    heartbeat: Heartbeat,
    *,
    fetch: bool,
    force_train: bool,
    isolation: str,
    provider_factory: ProviderFactory | None,
    stop: threading.Event | None,
    today: date | None,
) -> StepOutcome:
    try:
        lock = acquire(engine, ticker_lock_name(symbol), owner, lock_ttl)
    except LockBusy as exc:
        return StepOutcome(symbol, status="skipped", notes=[f"{exc}: left to that run"])
    except OperationalError as exc:
        return StepOutcome(
            symbol,
            status="failed",
            error=f"database unavailable: {storage.db_error_summary(exc)}",
        )
    heartbeat.track(lock)
    try:
        if isolation == "process":
            return _run_in_child(settings, symbol, fetch, force_train, stop, today)
        return process_ticker(
            settings,
            symbol,
            fetch=fetch,
            force_train=force_train,
            provider_factory=provider_factory,
            engine=engine,
            today=today,
        )
    finally:
        heartbeat.track(None)
        lock.release()
