"""Pipeline run and step records (job_runs, job_steps): written as the work happens, each in its
own short transaction, so `stockcast runs list` and GET /v1/runs show a run while it is going.
The run's heartbeat keeps its record fresh meanwhile."""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, selectinload, sessionmaker

from forecaster import storage
from forecaster.locks import process_gone
from forecaster.refresh import StepOutcome  # also imported from here, where it used to live

log = logging.getLogger(__name__)


def start_run(
    sessions: sessionmaker[Session], *, kind: str, trigger: str, tickers: list[str]
) -> int:
    now = storage.utcnow()
    with sessions.begin() as s:
        run = storage.JobRun(
            kind=kind,
            trigger=trigger,
            status="running",
            started_at=now,
            heartbeat_at=now,
            host=socket.gethostname(),
            pid=os.getpid(),
            tickers=tickers,
        )
        s.add(run)
        s.flush()
        return run.id


def start_step(sessions: sessionmaker[Session], run_id: int, ticker: str) -> int:
    with sessions.begin() as s:
        step = storage.JobStep(
            run_id=run_id, ticker=ticker, status="running", started_at=storage.utcnow()
        )
        s.add(step)
        s.flush()
        return step.id


def finish_step(
    sessions: sessionmaker[Session], step_id: int, outcome: StepOutcome, duration: float
) -> None:
    with sessions.begin() as s:
        s.execute(
            update(storage.JobStep)
            .where(storage.JobStep.id == step_id)
            .values(
                status=outcome.status,
                finished_at=storage.utcnow(),
                duration_seconds=duration,
                rows_fetched=outcome.rows_fetched,
                rows_inserted=outcome.rows_inserted,
                rows_rejected=outcome.rows_rejected,
                model_version_id=outcome.model_version_id,
                promoted=outcome.promoted,
                detail=outcome.detail,
                error=outcome.error,
                error_code=outcome.error_code,
                worker=outcome.worker,
            )
        )


def run_status(outcomes: list[StepOutcome]) -> str:
    statuses = [o.status for o in outcomes]
    failed = statuses.count("failed")
    succeeded = statuses.count("succeeded")
    if failed:
        return "partial" if succeeded else "failed"
    if statuses and not succeeded:
        return "skipped"  # e.g. every ticker was being handled by another run
    return "succeeded"


def finish_run(
    sessions: sessionmaker[Session],
    run_id: int,
    status: str,
    error: str | None = None,
    error_code: str | None = None,
) -> None:
    now = storage.utcnow()
    code = error_code or ("internal_error" if error else None)
    with sessions.begin() as s:
        s.execute(
            update(storage.JobRun)
            .where(storage.JobRun.id == run_id)
            .values(status=status, finished_at=now, heartbeat_at=now, error=error, error_code=code)
        )
        # Steps never reached (interrupted run) must not stay "running" forever.
        s.execute(
            update(storage.JobStep)
            .where(storage.JobStep.run_id == run_id, storage.JobStep.status == "running")
            .values(
                status="failed",
                finished_at=now,
                error=error or "run ended before the step",
                error_code=code or "interrupted",
            )
        )


def beat(sessions: sessionmaker[Session], run_id: int) -> None:
    with sessions.begin() as s:
        s.execute(
            update(storage.JobRun)
            .where(storage.JobRun.id == run_id)
            .values(heartbeat_at=storage.utcnow())
        )


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
                beat(self._sessions, self._run_id)
            except Exception:  # a database blip must not kill the heartbeat
                log.warning("heartbeat failed", exc_info=True)


def reap_stale_runs(
    sessions: sessionmaker[Session], stale_seconds: int, now: datetime | None = None
) -> list[int]:
    """Mark runs left in `running` by a dead process as failed (and their running steps).

    Dead means: its process is gone (same host), or it sent no heartbeat for `stale_seconds`
    (any host; runs heartbeat every few seconds while alive, whatever they are doing).
    """
    now = now or storage.utcnow()
    cutoff = now - timedelta(seconds=stale_seconds)
    reaped: list[tuple[int, str]] = []
    with sessions.begin() as s:
        running = s.scalars(
            select(storage.JobRun).where(storage.JobRun.status == "running").with_for_update()
        ).all()
        for run in running:
            last = storage.as_utc(run.heartbeat_at or run.started_at)
            if process_gone(run.host, run.pid):
                reaped.append((run.id, f"process {run.pid} on {run.host} died mid-run"))
                continue
            if last < cutoff:
                reaped.append((run.id, f"no heartbeat since {last.isoformat(timespec='seconds')}"))
        for run_id, reason in reaped:
            message = f"marked failed by a later run: {reason}"
            s.execute(
                update(storage.JobRun)
                .where(storage.JobRun.id == run_id)
                .values(status="failed", finished_at=now, error=message, error_code="run_died")
            )
            s.execute(
                update(storage.JobStep)
                .where(
                    storage.JobStep.run_id == run_id,
                    or_(storage.JobStep.status == "running", storage.JobStep.finished_at.is_(None)),
                )
                .values(status="failed", finished_at=now, error=message, error_code="run_died")
            )
    for run_id, reason in reaped:
        log.warning("stale run marked failed", extra={"run_id": run_id, "reason": reason})
    return [run_id for run_id, _ in reaped]


def recent_runs(session: Session, limit: int = 20, offset: int = 0) -> list[storage.JobRun]:
    return list(
        session.scalars(
            select(storage.JobRun)
            .options(selectinload(storage.JobRun.steps))
            .order_by(storage.JobRun.started_at.desc(), storage.JobRun.id.desc())
            .limit(limit)
            .offset(offset)
        )
    )


def last_run_started_after(session: Session, when: datetime) -> storage.JobRun | None:
    """The newest run (scheduled or by hand) that started at or after `when`."""
    return session.scalar(
        select(storage.JobRun)
        .where(storage.JobRun.started_at >= when)
        .order_by(storage.JobRun.started_at.desc())
        .limit(1)
    )
