"""The nightly scheduler: the real APScheduler drives the real pipeline; schedule configuration,
trading-day skipping, missed-run catch-up and a clean shutdown of the `stockcast scheduler` process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, JobExecutionEvent
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from forecaster import storage
from forecaster.errors import ConfigError
from forecaster.settings import Settings
from jobs.scheduler import JOB_ID, build_scheduler, cron_trigger, missed_fire_time, nightly_job

NY = ZoneInfo("America/New_York")


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=NY)


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)  # the production shape
def test_real_scheduler_runs_the_pipeline_for_two_tickers(
    pipeline_settings: Settings, engine: Engine, sessions: sessionmaker[Session], env: dict
) -> None:
    """APScheduler with a fast cron trigger (every second) and a clock fixed on a trading day;
    each ticker runs in its own child process, as in production."""
    settings = pipeline_settings.replace(executor="local")
    done = threading.Event()
    failures: list[BaseException] = []

    def listener(event: JobExecutionEvent) -> None:
        if event.exception is not None:
            failures.append(event.exception)
        done.set()

    sched = build_scheduler(
        settings,
        engine,
        scheduler=BackgroundScheduler(timezone=NY),
        trigger=CronTrigger(second="*", timezone=NY),
        clock=lambda: at(2019, 1, 2, 18, 30),  # a Wednesday session, after the close
    )
    sched.add_listener(listener, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
    sched.start()
    try:
        assert done.wait(timeout=240), "the scheduled pipeline did not finish"
    finally:
        sched.shutdown(wait=True)
    assert not failures
    with sessions() as s:
        runs = s.scalars(select(storage.JobRun)).all()
        assert runs and all(r.trigger == "scheduler" for r in runs)
        first = min(runs, key=lambda r: r.id)
        assert first.status == "succeeded", [(st.ticker, st.error) for st in first.steps]
        for symbol in ("^GSPC", "GOOG"):
            ticker = storage.get_ticker(s, symbol)
            assert ticker is not None
            assert storage.champion(s, ticker.id) is not None
            assert storage.latest_prediction(s, ticker.id) is not None
        assert s.scalar(select(func.count()).select_from(storage.ModelVersion)) == 2


def test_days_without_a_session_are_skipped(
    pipeline_settings: Settings, engine: Engine, sessions: sessionmaker[Session]
) -> None:
    for day in (at(2026, 11, 26, 18, 30), at(2026, 11, 28, 18, 30)):  # Thanksgiving, Saturday
        assert nightly_job(pipeline_settings, engine, clock=lambda day=day: day) is None
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(storage.JobRun)) == 0


def test_schedule_configuration(engine: Engine) -> None:
    settings = Settings()
    trigger = cron_trigger(settings)
    # Friday evening -> Monday 18:30 New York time (EST in winter)
    assert trigger.get_next_fire_time(None, at(2026, 11, 27, 19, 0)) == at(2026, 11, 30, 18, 30)
    sched = build_scheduler(settings, engine, scheduler=BackgroundScheduler(timezone=NY))
    job = sched.get_job(JOB_ID)
    assert job.coalesce is True and job.max_instances == 1
    assert job.misfire_grace_time == 6 * 3600
    assert sched.get_job(f"{JOB_ID}-catch-up") is None
    # a run missed on Friday evening, scheduler started on Saturday: caught up for Friday's date
    friday = at(2026, 11, 27, 18, 30)
    sched = build_scheduler(
        settings, engine, scheduler=BackgroundScheduler(timezone=NY), catch_up=friday
    )
    catch_up = sched.get_job(f"{JOB_ID}-catch-up")
    assert catch_up is not None and catch_up.kwargs["clock"]() == friday
    assert sched.get_job(JOB_ID) is not None  # the regular schedule goes on
    with pytest.raises(ConfigError, match="not a crontab expression"):
        cron_trigger(settings.replace(schedule_cron="every night"))
    with pytest.raises(ConfigError, match="unknown time zone"):
        cron_trigger(settings.replace(schedule_timezone="Mars/Olympus"))


def test_missed_run_is_caught_up_once(
    pipeline_settings: Settings, engine: Engine, sessions: sessionmaker[Session]
) -> None:
    settings = pipeline_settings
    evening = at(2026, 11, 24, 19, 0)  # Tuesday, 30 minutes after the scheduled 18:30
    assert missed_fire_time(settings, evening, engine) == at(2026, 11, 24, 18, 30)
    assert (
        missed_fire_time(settings, at(2026, 11, 24, 12, 0), engine) is None
    )  # last fire > 6 h ago
    assert (
        missed_fire_time(settings, at(2026, 11, 26, 19, 0), engine) is None
    )  # Thanksgiving: no session
    with sessions.begin() as s:  # a run started after the fire time: nothing to catch up
        s.add(
            storage.JobRun(
                kind="pipeline", trigger="cli", status="succeeded", tickers=["GOOG"],
                started_at=at(2026, 11, 24, 18, 45),
            )
        )  # fmt: skip
    assert missed_fire_time(settings, evening, engine) is None


def lines_until(proc: subprocess.Popen[str], marker: str, timeout: float) -> list[str]:
    """stderr lines up to the first containing `marker`, or whatever came within `timeout`.

    A reader thread does the blocking readline(), so the deadline holds even when the process
    prints nothing at all.
    """
    import queue
    import threading

    received: queue.Queue[str] = queue.Queue()

    stderr = proc.stderr
    assert stderr is not None

    def pump() -> None:
        for line in stderr:
            received.put(line)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout
    lines: list[str] = []
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = received.get(timeout=left)
        except queue.Empty:
            break
        lines.append(line)
        if marker in line:
            break
    return lines


def test_scheduler_process_starts_and_stops_cleanly(env: dict, tmp_path: Path) -> None:
    """`stockcast scheduler` as its own process: logs its next run, exits 0 on SIGTERM."""
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "stockcast"), "--log-format", "json", "scheduler",
         "--no-catch-up"],
        env={**os.environ, "STOCKCAST_SCHEDULE_CRON": "30 18 * * mon-fri"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        lines = lines_until(proc, '"scheduler started"', timeout=60)
        assert any('"scheduler started"' in line for line in lines), lines
        assert '"next_run"' in lines[-1] and "T18:30:00-0" in lines[-1]  # EST or EDT
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
