"""`stockcast serve`: the API under gunicorn (foreground, or --daemon with a pid file)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import click

from cli.context import AppContext, pass_app

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own variable


def gunicorn_argv(host: str, port: int, workers: int, threads: int) -> list[str]:
    exe = shutil.which("gunicorn", path=str(Path(sys.executable).parent)) or shutil.which(
        "gunicorn"
    )
    if exe is None:
        raise click.ClickException("gunicorn is not installed (pip install gunicorn)")
    return [
        exe,
        "api.wsgi:app",
        "--config",
        "python:api.gunicorn_conf",  # prometheus multiprocess hooks
        "--bind",
        f"{host}:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        # gthread (keep-alive connections, threads overlap database waits) answering gunicorn's
        # own refusals (414, 431, 400) in JSON
        "api.gunicorn_worker.JsonErrorWorker",
        "--threads",
        str(threads),
        "--timeout",
        "30",
        "--graceful-timeout",
        "10",
        "--keep-alive",
        "5",
        "--max-requests",
        "100000",  # recycle workers now and then; jitter keeps them from restarting together
        "--max-requests-jitter",
        "10000",
        "--no-control-socket",  # one shared socket path would clash between instances
    ]


def metrics_env(metrics_dir: Path) -> dict[str, str]:
    """The environment gunicorn must start with: PROMETHEUS_MULTIPROC_DIR set before any of its
    processes imports prometheus_client (the hooks in api/gunicorn_conf.py empty it at start)."""
    metrics_dir.mkdir(parents=True, exist_ok=True)
    return {**os.environ, MULTIPROC_ENV: str(metrics_dir.resolve())}


def _read_pid(pidfile: Path) -> int | None:
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def _stop(pidfile: Path) -> bool:
    pid = _read_pid(pidfile)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    for _ in range(100):
        if _read_pid(pidfile) is None:
            break
        time.sleep(0.1)
    return True


@click.command()
@click.option("--host", help="Address (default: STOCKCAST_API_HOST, 127.0.0.1).")
@click.option(
    "--port", type=click.IntRange(1, 65535), help="Port (default: STOCKCAST_API_PORT, 8000)."
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    help="Worker processes (default: STOCKCAST_API_WORKERS, or the number of cores).",
)
@click.option(
    "--threads",
    type=click.IntRange(1, 64),
    help="Threads per worker (default: STOCKCAST_API_THREADS, 4).",
)
@click.option(
    "--daemon",
    is_flag=True,
    help="Run in the background; pid and log files go to the data directory.",
)
@click.option("--stop", is_flag=True, help="Stop a server started with --daemon.")
@click.option(
    "--metrics-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder the workers share for /metrics, emptied at start "
    "(default: DATA_DIR/prometheus/PORT; a tmpfs is a good place).",
)
@pass_app
def serve(
    app: AppContext,
    host: str | None,
    port: int | None,
    workers: int | None,
    threads: int | None,
    daemon: bool,
    stop: bool,
    metrics_dir: Path | None,
) -> None:
    """Serve the HTTP API with gunicorn (`api.wsgi:app`)."""
    settings = app.settings
    host, port = host or settings.api_host, port or settings.api_port
    threads = threads or settings.api_threads
    workers = workers or settings.api_workers or os.cpu_count() or 2
    metrics_dir = metrics_dir or settings.metrics_dir
    run_dir = settings.data_dir
    pidfile, logfile = run_dir / "gunicorn.pid", run_dir / "gunicorn.log"
    if stop:
        click.echo("stopped" if _stop(pidfile) else "no server running")
        return
    app.check_schema()  # fail fast with a clear message instead of 503s
    argv = gunicorn_argv(host, port, workers, threads)
    # One folder per port: two servers sharing a data directory never mix their counts.
    env = metrics_env(metrics_dir or run_dir / "prometheus" / str(port))
    if not daemon:
        os.execve(argv[0], argv, env)
    run_dir.mkdir(parents=True, exist_ok=True)
    if _stop(pidfile):
        click.echo("stopped the previous server", err=True)
    argv += ["--daemon", "--pid", str(pidfile.resolve()), "--error-logfile", str(logfile.resolve())]
    subprocess.run(argv, check=True, env=env)
    for _ in range(100):
        if _read_pid(pidfile):
            click.echo(f"serving on http://{host}:{port} (pid {_read_pid(pidfile)}, log {logfile})")
            return
        time.sleep(0.1)
    raise click.ClickException(f"gunicorn did not start; see {logfile}")


COMMANDS = [serve]
