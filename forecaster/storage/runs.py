"""Pipeline run and step records (job_runs, job_steps), written as the work happens, each in its
own short transaction, so `stockcast runs list` and GET /v1/runs show a run while it is going
(both through `job_runs`); a run's heartbeat keeps its record fresh, and a later run marks the
runs of dead processes failed."""

from __future__ import annotations

import logging
import os
import socket
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session, selectinload, sessionmaker

from forecaster.processes import process_gone
from forecaster.storage.schema import JobRun, JobStep, as_utc, utcnow

log = logging.getLogger(__name__)


class StepFields(Protocol):
    """What a finished step records (forecaster.refresh.StepOutcome)."""

    status: str
    rows_fetched: int | None
    rows_inserted: int | None
    rows_rejected: int | None
    model_version_id: int | None
    promoted: bool | None
    error: str | None
    error_code: str | None
    worker: str | None

    @property
    def detail(self) -> str | None: ...


def start_run(
    sessions: sessionmaker[Session], *, kind: str, trigger: str, tickers: list[str]
) -> int:
    now = utcnow()
    with sessions.begin() as s:
        run = JobRun(
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
        step = JobStep(run_id=run_id, ticker=ticker, status="running", started_at=utcnow())
        s.add(step)
        s.flush()
        return step.id


def finish_step(
    sessions: sessionmaker[Session], step_id: int, outcome: StepFields, duration: float
) -> None:
    with sessions.begin() as s:
        s.execute(
            update(JobStep)
            .where(JobStep.id == step_id)
            .values(
                status=outcome.status,
                finished_at=utcnow(),
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


def finish_run(
    sessions: sessionmaker[Session],
    run_id: int,
    status: str,
    error: str | None = None,
    error_code: str | None = None,
) -> None:
    now = utcnow()
    code = error_code or ("internal_error" if error else None)
    with sessions.begin() as s:
        s.execute(
            update(JobRun)
            .where(JobRun.id == run_id)
            .values(status=status, finished_at=now, heartbeat_at=now, error=error, error_code=code)
        )
        # Steps never reached (interrupted run) must not stay "running" forever.
        s.execute(
            update(JobStep)
            .where(JobStep.run_id == run_id, JobStep.status == "running")
            .values(
                status="failed",
                finished_at=now,
                error=error or "run ended before the step",
                error_code=code or "interrupted",
            )
        )


def beat(sessions: sessionmaker[Session], run_id: int) -> None:
    with sessions.begin() as s:
        s.execute(update(JobRun).where(JobRun.id == run_id).values(heartbeat_at=utcnow()))


def reap_stale_runs(
    sessions: sessionmaker[Session], stale_seconds: int, now: datetime | None = None
) -> list[int]:
    """Mark runs left in `running` by a dead process as failed (and their running steps).

    Dead means: its process is gone (same host), or it sent no heartbeat for `stale_seconds`
    (any host; runs heartbeat every few seconds while alive, whatever they are doing).
    """
    now = now or utcnow()
    cutoff = now - timedelta(seconds=stale_seconds)
    reaped: list[tuple[int, str]] = []
    with sessions.begin() as s:
        running = s.scalars(
            select(JobRun).where(JobRun.status == "running").with_for_update()
        ).all()
        for run in running:
            last = as_utc(run.heartbeat_at or run.started_at)
            if process_gone(run.host, run.pid):
                reaped.append((run.id, f"process {run.pid} on {run.host} died mid-run"))
                continue
            if last < cutoff:
                reaped.append((run.id, f"no heartbeat since {last.isoformat(timespec='seconds')}"))
        for run_id, reason in reaped:
            message = f"marked failed by a later run: {reason}"
            s.execute(
                update(JobRun)
                .where(JobRun.id == run_id)
                .values(status="failed", finished_at=now, error=message, error_code="run_died")
            )
            s.execute(
                update(JobStep)
                .where(
                    JobStep.run_id == run_id,
                    or_(JobStep.status == "running", JobStep.finished_at.is_(None)),
                )
                .values(status="failed", finished_at=now, error=message, error_code="run_died")
            )
    for run_id, reason in reaped:
        log.warning("stale run marked failed", extra={"run_id": run_id, "reason": reason})
    return [run_id for run_id, _ in reaped]


def job_runs(
    session: Session, limit: int, offset: int, ticker: str | None = None
) -> tuple[int, list[JobRun]]:
    """Runs newest first with their steps (only runs that had a step for `ticker` if given)."""
    query = select(JobRun)
    if ticker is not None:
        query = query.where(JobRun.id.in_(select(JobStep.run_id).where(JobStep.ticker == ticker)))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    runs = session.scalars(
        query.options(selectinload(JobRun.steps))
        .order_by(JobRun.started_at.desc(), JobRun.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return total, list(runs)


def last_run_started_after(session: Session, when: datetime) -> JobRun | None:
    """The newest run (scheduled or by hand) that started at or after `when`."""
    return session.scalar(
        select(JobRun).where(JobRun.started_at >= when).order_by(JobRun.started_at.desc()).limit(1)
    )
