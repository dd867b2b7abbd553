"""The nightly scheduler: APScheduler 3.x in its own process (`stockcast scheduler`).

- Cron schedule from settings (default weekdays 18:30 America/New_York, after the US close),
  in the exchange's time zone; days without a trading session are skipped by the job itself.
- coalesce=True and max_instances=1: a backlog of missed fire times becomes one run, and a slow
  run is never overlapped by the next one in the same process. misfire_grace_time is hours, not
  APScheduler's default 1 s, so a run delayed by a busy machine still happens.
- Jobs live in memory, never in a shared job store (every replica would run them). Replicas and
  manual runs are kept apart by the per-ticker database locks in the pipeline instead.
- Catch-up on start: if the most recent fire time (within the grace period) passed while no
  scheduler was up and no run has started since, the pipeline runs right away.
- SIGTERM/SIGINT: stop taking work, interrupt the running step (its child process is killed,
  which is safe), record the run, exit.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from types import FrameType
from typing import Any

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobExecutionEvent,
)
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import Engine

from forecaster import storage
from forecaster.calendar import exchange_today, is_trading_day, schedule_zone
from forecaster.errors import ConfigError, StockcastError
from forecaster.settings import Settings
from jobs.pipeline import RunReport, run_pipeline

log = logging.getLogger(__name__)

JOB_ID = "nightly-pipeline"
Clock = Callable[[], datetime]


def cron_trigger(settings: Settings) -> CronTrigger:
    try:
        return CronTrigger.from_crontab(settings.schedule_cron, timezone=schedule_zone(settings))
    except ValueError as exc:
        raise ConfigError(
            f"STOCKCAST_SCHEDULE_CRON {settings.schedule_cron!r} is not a crontab expression "
            f"(minute hour day month day-of-week): {exc}"
        ) from exc


def nightly_job(
    settings: Settings,
    engine: Engine,
    stop: threading.Event | None = None,
    clock: Clock | None = None,
) -> RunReport | None:
    """The scheduled job (module-level, so its reference is stable): one pipeline run."""
    now = clock() if clock is not None else datetime.now(schedule_zone(settings))
    today = exchange_today(settings, now)
    if not is_trading_day(today, settings.exchange_calendar):
        log.info(
            "no trading session today: nothing to do",
            extra={"date": str(today), "calendar": settings.exchange_calendar},
        )
        return None
    try:
        report = run_pipeline(settings, trigger="scheduler", stop=stop, today=today, engine=engine)
    except StockcastError as exc:  # database down, schema behind: try again at the next fire time
        log.error("pipeline run could not start", extra={"error": str(exc)})
        return None
    finally:
        # The scheduler lives for days: no pooled connection outlives a run (a SQLite file
        # replaced meanwhile is opened afresh); the engine itself stays usable.
        engine.dispose()
    return report


def _on_event(event: JobExecutionEvent) -> None:
    if event.code == EVENT_JOB_MISSED:
        log.warning(
            "scheduled run missed (past the misfire grace time)",
            extra={"job": event.job_id, "scheduled": str(event.scheduled_run_time)},
        )
    elif event.code == EVENT_JOB_MAX_INSTANCES:
        log.warning("previous run still going: this fire time skipped", extra={"job": event.job_id})
    elif event.code == EVENT_JOB_ERROR:
        log.error(
            "scheduled run crashed",
            extra={"job": event.job_id, "error": repr(event.exception)},
        )
    elif event.code == EVENT_JOB_EXECUTED:
        log.info("scheduled run done", extra={"job": event.job_id})


def build_scheduler(
    settings: Settings,
    engine: Engine,
    *,
    scheduler: BaseScheduler | None = None,
    trigger: BaseTrigger | None = None,
    stop: threading.Event | None = None,
    clock: Clock | None = None,
    catch_up: datetime | None = None,
) -> BaseScheduler:
    """The scheduler with the nightly job added (not started). Tests pass their own scheduler,
    a fast trigger and a clock; production uses the defaults.

    `catch_up`: a fire time that was missed; a one-off run is added for it at once, judged by
    that time's date (a run missed on Friday evening still happens when started on Saturday).
    """
    zone = schedule_zone(settings)
    sched = scheduler or BackgroundScheduler(timezone=zone)
    common: dict[str, Any] = {
        "replace_existing": True,
        "coalesce": True,
        "max_instances": 1,
        "misfire_grace_time": settings.misfire_grace_seconds,
    }
    sched.add_job(
        nightly_job,
        trigger or cron_trigger(settings),
        id=JOB_ID,
        name="nightly pipeline: fetch, retrain, promote, predict",
        kwargs={"settings": settings, "engine": engine, "stop": stop, "clock": clock},
        **common,
    )
    if catch_up is not None:
        sched.add_job(
            nightly_job,
            "date",
            run_date=datetime.now(zone),
            id=f"{JOB_ID}-catch-up",
            name=f"catch-up of the run due {catch_up.isoformat()}",
            kwargs={
                "settings": settings,
                "engine": engine,
                "stop": stop,
                "clock": lambda: catch_up,
            },
            **common,
        )
    sched.add_listener(
        _on_event, EVENT_JOB_MISSED | EVENT_JOB_ERROR | EVENT_JOB_MAX_INSTANCES | EVENT_JOB_EXECUTED
    )
    return sched


def missed_fire_time(settings: Settings, now: datetime, engine: Engine) -> datetime | None:
    """The latest fire time within the grace period before `now` if no run has started since."""
    trigger = cron_trigger(settings)
    due = None
    t = trigger.get_next_fire_time(None, now - timedelta(seconds=settings.misfire_grace_seconds))
    while t is not None and t <= now:
        due = t
        t = trigger.get_next_fire_time(t, t + timedelta(seconds=1))
    if due is None or not is_trading_day(exchange_today(settings, due), settings.exchange_calendar):
        return None
    with storage.make_session_factory(engine)() as session:
        ran = storage.last_run_started_after(session, due)
    return None if ran is not None else due


def run_scheduler(settings: Settings, engine: Engine, *, catch_up: bool = True) -> None:
    """Block, running the pipeline on schedule until SIGTERM or SIGINT (on `engine`, which the
    caller opened and disposes of)."""
    zone = schedule_zone(settings)
    stop = threading.Event()
    now = datetime.now(zone)
    missed = missed_fire_time(settings, now, engine) if catch_up else None
    if missed is not None:
        log.warning(
            "a scheduled run was missed while no scheduler was up: running it now",
            extra={"missed": missed.isoformat()},
        )
    # A background scheduler with the main thread waiting on `stop`: the signal handler only
    # sets the event, so a signal at any moment (even before start-up finished) is safe.
    sched = build_scheduler(settings, engine, stop=stop, catch_up=missed)

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("scheduler stopping", extra={"signal": signal.Signals(signum).name})
        stop.set()  # a running step is interrupted (its child killed) and the run recorded

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    sched.start()
    upcoming = sched.get_job(JOB_ID).next_run_time
    log.info(
        "scheduler started",
        extra={
            "cron": settings.schedule_cron,
            "timezone": settings.schedule_timezone,
            "next_run": upcoming.isoformat() if upcoming else None,
            "seed_tickers": list(settings.tickers),  # used only by a fresh database
            "misfire_grace_seconds": settings.misfire_grace_seconds,
        },
    )
    while not stop.wait(timeout=1.0):
        pass
    sched.shutdown(wait=True)  # lets an interrupted run record itself
    log.info("scheduler stopped")
