"""The Celery executor: one task per ticker through a Redis broker, run by `stockcast worker`
processes on any number of machines (settings.executor = "celery").

Delivery rules that make a lost worker safe:
- `task_acks_late` + `task_reject_on_worker_lost`: a message is acknowledged only after its
  step ended; a worker process killed mid-step (OOM killer, SIGKILL) puts it back on the queue,
  and another worker runs it again. The step is idempotent by design (forecaster.service: each
  stage commits on its own; a version and its artifact are one transaction).
- A whole worker lost (its machine, or every process of it, killed): Redis would redeliver its
  message only after the visibility timeout. The run asks the workers every
  `LIVENESS_SECONDS` which steps they are running; a step whose worker stops answering three
  checks in a row is queued again for the others (up to `STOCKCAST_MAX_DELIVERIES` times), so
  a lost machine costs about 30 s, not hours; the first delivery stays watched, and whichever
  finishes first counts.
- `worker_prefetch_multiplier = 1`: a worker reserves one message per process, so a long
  training never holds tickers another worker could take.
- `worker_max_tasks_per_child`: a worker process is replaced after that many tickers
  (Keras grows with every model it builds), like the local pool.
- The broker's visibility timeout is longer than any step (twice the step timeout): Redis only
  redelivers a message whose worker vanished without a word after that long.
- `task_time_limit` = the step timeout: a step past it is killed (its process replaced).
- A redelivery cap: each delivery of a task is counted in Redis; one delivered more than
  `STOCKCAST_MAX_DELIVERIES` times (its worker died every time: a poison ticker) is failed as
  `poison` without running, so it neither loops nor takes the workers down with it.
- A ticker is never trained twice at once: the task takes the ticker's lock itself
  (refresh_ticker_locked) and skips a ticker another run holds.

This module holds the app, its configuration and the worker side; the run side (queueing,
following, liveness) is jobs.executors.celery_executor. Transport only: each task is a
jobs.executors.base.StepTask as JSON, run by base.run_step in the
worker's process. A worker reads its own environment (database, broker, training
settings); a task carries the run's training configuration, and a worker whose own differs
refuses it (`config_mismatch`) instead of training another model.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from dataclasses import asdict
from datetime import timedelta
from typing import Any

from celery import Celery, signals
from sqlalchemy import Engine

from forecaster.errors import StockcastError
from forecaster.settings import Settings
from jobs.executors.base import (
    StepTask,
    bootstrap_worker,
    failed,
    preload_tensorflow,
    quiet_tensorflow,
    run_step,
    tf_threads,
)

log = logging.getLogger(__name__)

# The name the task has had since the first release: a worker of an older release that takes a
# new task (or a new worker an old one) fails it at once instead of dropping it as unregistered.
TASK = "stockcast.refresh_ticker"
# A whole worker lost: how often the run asks the workers what they run, and after how many
# checks in a row without an answer a worker's steps are queued again.
LIVENESS_SECONDS = 10.0
LOST_AFTER = 3


class BrokerUnavailable(StockcastError):
    code = "broker_unavailable"


class NoWorkers(StockcastError):
    code = "no_workers"


app = Celery("stockcast", set_as_current=False)


def configure(settings: Settings) -> Celery:
    """Point the app at the broker and apply the delivery rules (module docstring)."""
    visibility = 2 * settings.step_timeout_seconds + 300
    previous = app.conf.get("broker_url")
    if previous is not None and previous != settings.broker_url:
        # Another broker than this process used so far: drop the pooled connections and the
        # cached result store, or they would keep talking to the old one.
        app.close()
        for cached in ("amqp", "control"):  # producers and mailboxes bound to the old pool
            app.__dict__.pop(cached, None)
        app._backend_cache = None
        app._local = threading.local()
    app.conf.update(
        broker_url=settings.broker_url,
        result_backend=settings.broker_url,
        broker_transport_options={"visibility_timeout": visibility},
        # A result store that does not answer is given up on after 2 s (the default retries
        # for minutes): the run keeps its deadline and asks the database instead.
        result_backend_transport_options={
            "visibility_timeout": visibility,
            "retry_policy": {"timeout": 2.0},
        },
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=5,
        redis_socket_connect_timeout=5,
        redis_socket_timeout=30,
        task_default_queue=settings.celery_queue,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        task_time_limit=settings.step_timeout_seconds,
        task_track_started=True,
        result_expires=timedelta(days=1),
        result_extended=False,
        worker_prefetch_multiplier=1,
        worker_max_tasks_per_child=settings.worker_max_tasks,
        worker_proc_alive_timeout=120,  # a process sets up TensorFlow before it says it is up
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_send_task_events=False,
    )
    return app


def worker_name(hostname: str | None) -> str:
    """A Celery node name without its host part (GET /v1/runs shows it; hosts stay private)."""
    return (hostname or "celery").split("@", 1)[0][:80]


def check_broker(settings: Settings) -> None:
    """Raise BrokerUnavailable (one line) unless the broker answers now."""
    configure(settings)
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=1, timeout=5)
    except Exception as exc:
        # No URL in the message: it may hold a password, and the run's record keeps the text.
        raise BrokerUnavailable(
            f"the Celery broker (STOCKCAST_BROKER_URL) does not answer ({type(exc).__name__}); "
            "is Redis running?"
        ) from None


# --------------------------------------------------------------------------- worker side


class _WorkerState:
    """This worker process's settings and database engine, set once by its bootstrap."""

    settings: Settings | None = None
    engine: Engine | None = None


def _worker_state() -> tuple[Settings, Engine]:
    if _WorkerState.settings is None or _WorkerState.engine is None:  # not a prefork child
        from forecaster import storage

        settings = Settings.from_env()
        _WorkerState.engine = storage.make_engine(
            settings.resolved_database_url, timeout=settings.db_timeout_seconds
        )
        _WorkerState.settings = settings
    assert _WorkerState.settings is not None and _WorkerState.engine is not None
    return _WorkerState.settings, _WorkerState.engine


@app.task(name=TASK, bind=True)
def run_step_task(self: Any, task: Any, *legacy: Any) -> dict[str, Any]:
    name = worker_name(self.request.hostname)
    if legacy or not isinstance(task, dict):  # (symbol, options): a run of an older release
        outcome = failed(
            str(task), "the step comes from another stockcast release; refused", "config_mismatch"
        )
        outcome.worker = name
        return {"outcome": asdict(outcome), "seconds": 0.0, "rss_mb": 0.0}
    settings, engine = _worker_state()
    step = StepTask.from_json(task)
    delivery = _count_delivery(self.request.id, settings)
    if delivery > settings.max_deliveries:
        outcome = failed(
            step.target,
            f"delivered {delivery} times and each delivery ended its worker process (killed or "
            "crashed): failed as poison, not delivered again",
            "poison",
        )
        outcome.worker = name
        log.error("poison step refused", extra={"ticker": step.target, "delivery": delivery})
        return {"outcome": asdict(outcome), "seconds": 0.0, "rss_mb": 0.0}
    result = run_step(step, settings, engine=engine, worker=name)
    return {"outcome": asdict(result.outcome), "seconds": result.seconds, "rss_mb": result.rss_mb}


def _count_delivery(task_id: str | None, settings: Settings) -> int:
    """This delivery's number for the task (1 on the first), counted in the broker's Redis: a
    step that kills its worker is redelivered at once (acks late, reject on worker lost), and
    only a count kept outside the worker can stop that. 1 when it cannot be counted."""
    if not task_id:
        return 1
    try:
        client = app.backend.client  # the result store: the same Redis as the broker
        key = f"stockcast:deliveries:{task_id}"
        count = int(client.incr(key))
        client.expire(key, 2 * settings.step_timeout_seconds + 300)
        return count
    except Exception as exc:  # a broker blip must not stop a healthy step
        log.warning("could not count the delivery", extra={"error": repr(exc)})
        return 1


@signals.worker_process_init.connect
def _init_worker_process(**_: Any) -> None:
    """Each pool process: the shared worker bootstrap (base.bootstrap_worker) with this
    worker's own settings and its share of the cores."""
    settings = Settings.from_env()
    threads = tf_threads(settings.worker_concurrency or 1, settings.tf_threads)
    _WorkerState.engine = bootstrap_worker(settings, threads=threads, parent_pid=os.getppid())
    _WorkerState.settings = settings


def worker_argv(concurrency: int, name: str | None, loglevel: str, queue: str) -> list[str]:
    node = name or f"stockcast-{uuid.uuid4().hex[:6]}"
    return [
        "worker",
        f"--concurrency={concurrency}",
        "--pool=prefork",
        f"--hostname={node}@%h",
        f"--queues={queue}",
        f"--loglevel={loglevel}",
        "--without-gossip",
        "--without-mingle",
    ]


def start_worker(settings: Settings, concurrency: int, name: str | None = None) -> None:
    """Run a Celery worker in this process until it is stopped (SIGTERM: warm shutdown)."""
    # The forked pool processes read their settings again: they learn the concurrency from it.
    os.environ["STOCKCAST_WORKER_CONCURRENCY"] = str(concurrency)
    quiet_tensorflow()
    configure(settings)
    check_broker(settings)
    preload_tensorflow(settings)  # once here, not in every pool process forked from here
    app.worker_main(worker_argv(concurrency, name, settings.log_level, settings.celery_queue))
