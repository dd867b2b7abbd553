"""gunicorn server hooks for prometheus_client's multiprocess mode (`-c python:api.gunicorn_conf`).

The folder named by PROMETHEUS_MULTIPROC_DIR is set by whoever starts gunicorn (`stockcast serve`
passes a per-port folder under the data directory, or the operator's own), in the environment, so
that it is there before any process imports prometheus_client. These hooks, all run in gunicorn's
master process:
- when_ready: after the socket is bound and before the first worker forks, create the folder and
  empty it, so figures of a previous run never leak into this one; a server that fails to bind
  (the port is taken) leaves the running one's files alone.
- child_exit: a worker that exits (recycled by --max-requests, crashed, or at shutdown) is marked
  dead: its live-gauge files go, its counter and histogram files stay so totals stay monotonic.

And one in each worker:
- post_worker_init: once the application is loaded, its objects are moved out of the garbage
  collector's reach (`gc.freeze`). A summary of 5,000 tickers allocates enough to trigger a full
  collection every few requests, and a full collection of the loaded application took ~75 ms
  (p95 114 ms against a median of 37 ms; with the freeze, p95 39 ms).
"""

from __future__ import annotations

import gc
import logging
from pathlib import Path
from typing import Any

from prometheus_client import multiprocess

from forecaster.settings import Settings

_ENV = "PROMETHEUS_MULTIPROC_DIR"
_log = logging.getLogger("gunicorn.error")


def _metrics_dir() -> Path | None:
    return Settings.from_env().metrics_dir


def when_ready(server: Any) -> None:
    folder = _metrics_dir()
    if folder is None:
        _log.warning(
            "%s is not set: each worker keeps its own metrics and /metrics shows only the worker "
            "that answers; start the API with `stockcast serve`",
            _ENV,
        )
        return
    if server.master_pid:
        # A master re-executed by USR2 (binary upgrade): the old master's workers still write
        # here and their counts must not vanish.
        return
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink(missing_ok=True)


def child_exit(server: Any, worker: Any) -> None:
    if _metrics_dir() is None:
        return
    multiprocess.mark_process_dead(worker.pid)


def post_worker_init(worker: Any) -> None:
    gc.collect()
    gc.freeze()  # full collections scan only what requests allocate from now on
