"""The Celery executor: one task per ticker through a Redis broker, run by `stockcast worker`
processes on any number of machines (settings.executor = "celery").

Delivery rules that make a lost worker safe:
- `task_acks_late` + `task_reject_on_worker_lost`: a message is acknowledged only after its
  step ended; a worker process killed mid-step (OOM killer, SIGKILL) puts it back on the queue,
  and another worker runs it again. The step is idempotent by design (forecaster.service: each
  stage commits on its own, artifacts without a row are removed under the ticker's lock).
- `worker_prefetch_multiplier = 1`: a worker reserves one message per process, so a long
  training never holds tickers another worker could take.
- `worker_max_tasks_per_child`: a worker process is replaced after that many tickers
  (Keras grows with every model it builds), like the local pool.
- The broker's visibility timeout is longer than any step (twice the step timeout): Redis only
  redelivers a message whose worker vanished without a word after that long.
- `task_time_limit` = the step timeout: a step past it is killed (its process replaced).
- A ticker is never trained twice at once: the task takes the ticker's lock itself
  (refresh_ticker_locked) and skips a ticker another run holds.

Workers read their own environment (database, model directory, training settings): every
worker must be configured like the scheduler and share its database and model store.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any

from celery import Celery, signals
from celery.exceptions import TimeLimitExceeded, WorkerLostError

from forecaster.errors import StockcastError
from forecaster.service import RefreshOptions, StepOutcome
from forecaster.settings import Settings
from jobs.executors import Finished, Started, interrupted, peak_rss_mb

log = logging.getLogger(__name__)

TASK = "stockcast.refresh_ticker"


class BrokerUnavailable(StockcastError):
    code = "broker_unavailable"


class NoWorkers(StockcastError):
    code = "no_workers"


app = Celery("stockcast", set_as_current=False)


def configure(settings: Settings) -> Celery:
    """Point the app at the broker and apply the delivery rules (module docstring)."""
    visibility = 2 * settings.step_timeout_seconds + 300
    app.conf.update(
        broker_url=settings.broker_url,
        result_backend=settings.broker_url,
        broker_transport_options={"visibility_timeout": visibility},
        result_backend_transport_options={"visibility_timeout": visibility},
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
        worker_proc_alive_timeout=120,  # a process imports TensorFlow before it says it is up
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_send_task_events=False,
    )
    return app


def options_to_json(options: RefreshOptions) -> dict[str, Any]:
    return {
        "fetch": options.fetch,
        "force_train": options.force_train,
        "today": options.today.isoformat() if options.today else None,
    }


def options_from_json(data: dict[str, Any]) -> RefreshOptions:
    today = data.get("today")
    return RefreshOptions(
        fetch=bool(data.get("fetch", True)),
        force_train=bool(data.get("force_train", False)),
        today=date.fromisoformat(today) if today else None,
    )


def worker_name(hostname: str | None) -> str:
    """A Celery node name without its host part (GET /v1/runs shows it; hosts stay private)."""
    return (hostname or "celery").split("@", 1)[0][:80]


# --------------------------------------------------------------------------- worker side


@cache
def _worker_state() -> tuple[Settings, Any]:
    """The worker process's settings and database engine, built once per process."""
    from forecaster import storage

    settings = Settings.from_env()
    engine = storage.make_engine(
        settings.resolved_database_url, timeout=settings.db_timeout_seconds
    )
    return settings, engine


@app.task(name=TASK, bind=True)
def refresh_ticker_task(self: Any, symbol: str, options: dict[str, Any]) -> dict[str, Any]:
    from forecaster.service import refresh_ticker_locked

    settings, engine = _worker_state()
    t0 = time.perf_counter()
    outcome = refresh_ticker_locked(settings, symbol, options_from_json(options), engine=engine)
    outcome.worker = worker_name(self.request.hostname)
    return {
        "outcome": asdict(outcome),
        "seconds": time.perf_counter() - t0,
        "rss_mb": peak_rss_mb(),
    }


@signals.worker_process_init.connect
def _init_worker_process(**_: Any) -> None:
    """Each pool process: log like the rest of stockcast, die with the worker that forked it,
    import TensorFlow once with its share of the cores."""
    from forecaster.logs import configure_logging
    from forecaster.model import warm_up
    from jobs.executors import die_with_parent, tf_threads

    settings, _engine = _worker_state()
    configure_logging(settings.log_level, settings.log_format)
    die_with_parent(os.getppid())
    warm_up(tf_threads(int(os.environ.get("STOCKCAST_WORKER_CONCURRENCY", "1"))))


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
    os.environ["STOCKCAST_WORKER_CONCURRENCY"] = str(concurrency)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    configure(settings)
    check_broker(settings)
    app.worker_main(worker_argv(concurrency, name, settings.log_level, settings.celery_queue))


# --------------------------------------------------------------------------- run side


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


@dataclass
class CeleryExecutor:
    settings: Settings
    options: RefreshOptions
    stop: threading.Event | None = None
    name: str = "celery"
    poll_seconds: float = 0.5
    peak_rss: dict[str, float] = field(default_factory=dict)  # worker name -> MiB

    def run(self, symbols: Sequence[str], started: Started, finished: Finished) -> None:
        check_broker(self.settings)
        replies = app.control.ping(timeout=2.0)
        if not replies:
            raise NoWorkers(
                "no Celery worker answers on the broker; start one with `stockcast worker`"
            )
        # Deadline: every ticker's step, one after another per answering worker, plus one more.
        rounds = -(-len(symbols) // max(1, len(replies)))
        budget = self.settings.step_timeout_seconds * (rounds + 1)
        deadline = time.monotonic() + budget
        expires = datetime.now(UTC) + timedelta(seconds=budget)
        payload = options_to_json(self.options)
        pending: dict[str, Any] = {}
        for symbol in symbols:
            try:
                pending[symbol] = refresh_ticker_task.apply_async(
                    args=[symbol, payload], queue=self.settings.celery_queue, expires=expires
                )
            except Exception:  # the broker went away mid-way: what was queued must not run
                self._abandon(pending, finished, interrupted_outcome=True)
                raise BrokerUnavailable(
                    "the Celery broker (STOCKCAST_BROKER_URL) stopped answering while the run "
                    "queued its tickers"
                ) from None
            started(symbol)
        log.info("tasks queued", extra={"tasks": len(pending), "workers": len(replies)})
        while pending:
            for symbol, result in list(pending.items()):
                try:
                    if not result.ready():
                        continue
                except Exception as exc:  # the result store blinked: ask again next round
                    log.warning("could not read a task's state", extra={"error": repr(exc)})
                    continue
                try:
                    outcome, seconds = self._collect(symbol, result)
                except Exception as exc:  # an unreadable result fails its ticker, not the rest
                    outcome, seconds = (
                        StepOutcome(
                            symbol,
                            status="failed",
                            error=f"unreadable task result: {type(exc).__name__}: {exc}",
                            error_code="internal_error",
                        ),
                        0.0,
                    )
                del pending[symbol]
                finished(outcome, seconds)
            if not pending:
                return
            if self.stop is not None and self.stop.is_set():
                self._abandon(pending, finished, interrupted_outcome=True)
                return
            if time.monotonic() > deadline:  # after this round's results were read
                self._abandon(pending, finished, interrupted_outcome=False, budget=budget)
                return
            (self.stop or threading.Event()).wait(self.poll_seconds)

    def _collect(self, symbol: str, result: Any) -> tuple[StepOutcome, float]:
        if result.successful():
            data = result.get(disable_sync_subtasks=False)
            outcome = StepOutcome(**data["outcome"])
            if outcome.worker:
                self.peak_rss[outcome.worker] = max(
                    self.peak_rss.get(outcome.worker, 0.0), float(data.get("rss_mb", 0.0))
                )
            return outcome, float(data["seconds"])
        error = result.result
        if isinstance(error, TimeLimitExceeded):
            code, text = "timeout", f"timed out after {self.settings.step_timeout_seconds}s"
        elif isinstance(error, WorkerLostError):
            code, text = "step_crashed", f"worker process lost: {error}"
        else:
            code, text = "internal_error", f"{type(error).__name__}: {error}"
        return StepOutcome(symbol, status="failed", error=text, error_code=code), 0.0

    def _abandon(
        self,
        pending: dict[str, Any],
        finished: Finished,
        *,
        interrupted_outcome: bool,
        budget: float = 0.0,
    ) -> None:
        """Revoke what has not run (a worker that already started finishes under its lock)."""
        try:
            app.control.revoke([r.id for r in pending.values()])
        except Exception:
            log.warning("could not revoke queued tasks", exc_info=True)
        for symbol in list(pending):
            if interrupted_outcome:
                outcome = interrupted(symbol)
            else:
                outcome = StepOutcome(
                    symbol,
                    status="failed",
                    error=f"no worker finished it within {budget:.0f}s",
                    error_code="timeout",
                )
            finished(outcome, 0.0)
        pending.clear()
