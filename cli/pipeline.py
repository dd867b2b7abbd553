"""`stockcast run-now`, `scheduler`, `worker`, `runs list`: the pipeline by hand, on schedule,
on Celery workers, and its record."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

import click

from cli.context import AppContext, pass_app, resolve_tickers
from forecaster import storage
from forecaster.refresh import StepOutcome


def _duration(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f}s"


def echo_outcome(symbol: str, outcome: StepOutcome) -> None:
    line = f"{symbol}: {outcome.status}"
    if outcome.detail:
        line += f"; {outcome.detail}"
    if outcome.error:
        line += f"; error: {outcome.error}"
    click.echo(line)


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (a supervisor, `kill`, `docker stop`) ends a foreground run the way Ctrl-C does:
    the run and its unfinished steps are recorded `interrupted` and no lock is left behind."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _interrupt(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_and_report(
    app: AppContext,
    symbols: list[str],
    *,
    kind: str,
    fetch: bool,
    force_train: bool,
    workers: int | None = None,
    executor: str | None = None,
) -> None:
    from jobs.pipeline import run_pipeline

    app.check_schema()
    total = len(symbols)
    position = {s: i for i, s in enumerate(symbols, start=1)}

    def progress(symbol: str, outcome: StepOutcome | None) -> None:
        if outcome is None:
            step = f"{position[symbol]}/{total}" if symbol in position else "all"
            click.echo(f"[{step}] {symbol}: working ...", err=True)
        else:
            echo_outcome(symbol, outcome)

    settings = app.settings.replace(executor=executor) if executor else app.settings
    with terminate_as_interrupt():
        report = run_pipeline(
            settings,
            symbols,
            trigger="cli",
            kind=kind,
            fetch=fetch,
            force_train=force_train,
            progress=progress,
            engine=app.engine,
            workers=workers,
        )
    if report.reaped:
        click.echo(
            f"marked {len(report.reaped)} run(s) left running by a dead process as failed", err=True
        )
    click.echo(f"run {report.run_id}: {report.status} in {report.seconds:.1f}s")
    if report.status in ("failed", "partial"):
        raise click.ClickException(
            f"run {report.run_id} {report.status}; see `stockcast runs list`"
        )


@click.command("run-now")
@click.argument("tickers", nargs=-1)
@click.option(
    "--force-train",
    is_flag=True,
    help="Retrain even if the newest model already covers the stored prices.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    default=None,
    help="Worker processes of the local executor (default: STOCKCAST_WORKERS or the core count).",
)
@click.option(
    "--executor",
    type=click.Choice(["local", "celery", "inline"]),
    default=None,
    help="Where the steps run (default: STOCKCAST_EXECUTOR, local).",
)
@pass_app
def run_now(
    app: AppContext,
    tickers: tuple[str, ...],
    force_train: bool,
    workers: int | None,
    executor: str | None,
) -> None:
    """Run the pipeline once in the foreground for TICKERS (default: the tracked tickers).

    For each ticker: fetch new prices, validate and store them, retrain and evaluate against
    persistence, promote or reject, and forecast the next trading day. A ticker another run is
    working on is skipped; a failing ticker is recorded and the others go on. Tickers run in
    parallel on the executor's workers.
    """
    run_and_report(
        app,
        resolve_tickers(app, tickers),
        kind="pipeline",
        fetch=True,
        force_train=force_train,
        workers=workers,
        executor=executor,
    )


@click.command()
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=None,
    help="Tickers this worker trains at once (default: the core count).",
)
@click.option(
    "--name",
    default=None,
    help="Worker name shown on the steps it runs (default: stockcast-<random>); no host name.",
)
@pass_app
def worker(app: AppContext, concurrency: int | None, name: str | None) -> None:
    """Run a Celery worker for STOCKCAST_EXECUTOR=celery until stopped (Ctrl-C or SIGTERM).

    Start as many as you like, on any machine that reaches the broker (STOCKCAST_BROKER_URL),
    and the database (models live there too); each takes one ticker per process at a time.
    """
    import os
    import re

    from jobs.executors.celery import start_worker

    if name is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", name):
        raise click.BadParameter("letters, digits, '.', '_' and '-' only", param_hint="--name")
    app.check_schema()
    start_worker(
        app.settings, concurrency or app.settings.worker_concurrency or os.cpu_count() or 1, name
    )


@click.command()
@click.option(
    "--no-catch-up",
    is_flag=True,
    help="Do not run at start-up when a scheduled run was missed while no scheduler was up.",
)
@pass_app
def scheduler(app: AppContext, no_catch_up: bool) -> None:
    """Run the nightly pipeline on schedule (STOCKCAST_SCHEDULE_CRON) until stopped.

    Start exactly this process for scheduling, not the API workers. Several replicas are safe:
    per-ticker database locks keep them from working on the same ticker.
    """
    from jobs.scheduler import run_scheduler

    app.check_schema()
    run_scheduler(app.settings, app.engine, catch_up=not no_catch_up)


@click.group()
def runs() -> None:
    """Pipeline runs."""


@runs.command("list")
@click.option("--limit", type=click.IntRange(1, 500), default=10, show_default=True)
@pass_app
def runs_list(app: AppContext, limit: int) -> None:
    """Recent pipeline runs, newest first, with each ticker's step."""
    with app.transaction() as session:
        _, rows = storage.job_runs(session, limit, 0)  # GET /v1/runs's query
        if not rows:
            click.echo(
                "no pipeline runs yet; run `stockcast run-now` or start `stockcast scheduler`"
            )
            return
        for run in rows:
            finished = run.finished_at
            duration = (finished - run.started_at).total_seconds() if finished else None
            click.echo(
                f"run {run.id:<5} {run.status:<9} {run.kind:<8} {run.trigger:<9} "
                f"{run.started_at:%Y-%m-%d %H:%M:%S}  {_duration(duration):>8}  "
                f"{run.host or '-'}:{run.pid or '-'}"
                + (f"  error: {run.error}" if run.error else "")
            )
            for step in run.steps:
                parts = [
                    f"    {step.ticker:<10} {step.status:<9} {_duration(step.duration_seconds):>8}"
                    f"  {step.worker or '-'}"
                ]
                if step.detail:
                    parts.append(step.detail)
                if step.error:
                    parts.append(f"error: {step.error}")
                click.echo("  ".join(parts))


@runs.command("show")
@click.argument("run_id", type=click.IntRange(1))
@pass_app
def runs_show(app: AppContext, run_id: int) -> None:
    """Everything recorded about run RUN_ID, full error texts included (operators only: the
    HTTP API shows error codes and short public messages)."""
    with app.transaction() as session:
        run = session.get(storage.JobRun, run_id)
        if run is None:
            raise click.ClickException(f"no run {run_id}")
        finished = (
            f"finished {run.finished_at:%Y-%m-%d %H:%M:%S}" if run.finished_at else "still running"
        )
        click.echo(
            f"run {run.id}: {run.status} ({run.kind}, {run.trigger}) on {run.host or '-'} "
            f"pid {run.pid or '-'}; started {run.started_at:%Y-%m-%d %H:%M:%S}, {finished}"
        )
        if run.error:
            click.echo(f"  error [{run.error_code}]: {run.error}")
        for step in run.steps:
            click.echo(
                f"  {step.ticker}: {step.status} in {_duration(step.duration_seconds)} on "
                f"{step.worker or '-'}; rows "
                f"fetched {step.rows_fetched}, inserted {step.rows_inserted}, rejected "
                f"{step.rows_rejected}; model version id {step.model_version_id}"
            )
            if step.detail:
                click.echo(f"    {step.detail}")
            if step.error:
                click.echo(f"    error [{step.error_code}]: {step.error}")


COMMANDS = [run_now, scheduler, worker, runs]
