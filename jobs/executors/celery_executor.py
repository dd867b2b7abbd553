"""The Celery executor's run side: the run process queues one task per ticker on the broker
(jobs.executors.celery holds the app, its configuration and the worker side), follows the
steps, watches the workers' liveness and queues again the steps of a lost worker, and reads a
step's outcome from the database when the broker lost its result.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from celery.exceptions import TimeLimitExceeded, WorkerLostError
from sqlalchemy import Engine

from forecaster.refresh import StepOutcome
from forecaster.settings import Settings
from jobs.executors.base import (
    Finished,
    Started,
    StepTask,
    crashed,
    failed,
    interrupted,
)
from jobs.executors.celery import (
    LIVENESS_SECONDS,
    LOST_AFTER,
    BrokerUnavailable,
    NoWorkers,
    app,
    check_broker,
    run_step_task,
    worker_name,
)

log = logging.getLogger(__name__)


def connection_error(exc: BaseException) -> bool:
    """The broker or result store did not answer (as opposed to a task that failed)."""
    from kombu.exceptions import OperationalError
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    kinds = (ConnectionError, TimeoutError, RedisConnectionError, RedisTimeoutError)
    return isinstance(exc, (*kinds, OperationalError))


def bounded(call: Any, seconds: float) -> bool:
    """Run `call` in a daemon thread for at most `seconds` (a broker that is down may make a
    control command retry for minutes); True if it finished."""
    thread = threading.Thread(target=call, name="stockcast-bounded", daemon=True)
    thread.start()
    thread.join(seconds)
    return not thread.is_alive()


def stored_since(engine: Engine | None, symbol: str, since: datetime) -> StepOutcome | None:
    """What the database says a step did when its result is lost with the broker: a forecast of
    the ticker stored since the run began means the step ran to its end (forecasting is its
    last stage; training and promotion, if any, committed before it)."""
    if engine is None:
        return None
    from sqlalchemy import select

    from forecaster import storage

    P, T, V = storage.Prediction, storage.Ticker, storage.ModelVersion
    with storage.make_session_factory(engine)() as s:
        found = s.execute(
            select(P, V.version)
            .join(T, T.id == P.ticker_id)
            .join(V, V.id == P.model_version_id)
            .where(T.symbol == symbol, P.created_at >= since)
            .order_by(P.created_at.desc())
            .limit(1)
        ).first()
    if found is None:
        return None
    p, version = found
    return StepOutcome(
        symbol,
        forecast={
            "as_of": p.as_of_date.isoformat(),
            "target_date": p.target_date.isoformat(),
            "predicted_close": round(p.predicted_close, 4),
            "method": p.method,
            "model_version": version,
        },
        notes=[
            "the task's result was lost with the broker; the database shows its forecast "
            f"{p.target_date}: {p.predicted_close:.2f} ({p.method}, v{version}) stored"
        ],
    )


@dataclass
class CeleryExecutor:
    settings: Settings
    stop: threading.Event | None = None
    name: str = "celery"
    poll_seconds: float = 0.5
    peak_rss: dict[str, float] = field(default_factory=dict)  # worker name -> MiB
    engine: Engine | None = None  # the run's database: the truth when results are lost
    liveness_seconds: float = LIVENESS_SECONDS
    _known: set[str] = field(default_factory=set)  # workers that answered during the run
    _silent: dict[str, int] = field(default_factory=dict)  # worker -> checks it did not answer
    _resent: dict[str, int] = field(default_factory=dict)  # ticker -> times queued again
    _earlier: dict[str, list[Any]] = field(default_factory=dict)  # ticker -> lost deliveries
    _next_check: float = 0.0

    def run(self, tasks: Sequence[StepTask], started: Started, finished: Finished) -> None:
        check_broker(self.settings)
        replies = app.control.ping(timeout=2.0)
        self._known = {name for reply in replies for name in reply}
        if not replies:
            raise NoWorkers(
                "no Celery worker answers on the broker; start one with `stockcast worker`"
            )
        # Deadline: every ticker's step, one after another per answering worker, plus one more.
        rounds = -(-len(tasks) // max(1, len(replies)))
        budget = self.settings.step_timeout_seconds * (rounds + 1)
        deadline = time.monotonic() + budget
        expires = datetime.now(UTC) + timedelta(seconds=budget)
        pending: dict[str, Any] = {}
        by_target = {task.target: task for task in tasks}

        def send(task: StepTask) -> Any:
            return run_step_task.apply_async(
                args=[task.to_json()], queue=self.settings.celery_queue, expires=expires
            )

        self._next_check = time.monotonic() + self.liveness_seconds
        for task in tasks:
            try:
                pending[task.target] = send(task)
            except Exception:  # the broker went away mid-way: what was queued must not run
                self._abandon(pending, finished, interrupted_outcome=True)
                raise BrokerUnavailable(
                    "the Celery broker (STOCKCAST_BROKER_URL) stopped answering while the run "
                    "queued its tickers"
                ) from None
            started(task.target)
        log.info("tasks queued", extra={"tasks": len(pending), "workers": len(replies)})
        since = datetime.now(UTC) - timedelta(seconds=1)  # database clocks: a second of slack
        while pending:
            broker_down = self._read_round(pending, finished)
            if broker_down:  # results cannot be read: what the database says is the truth
                self._finish_from_database(pending, finished, since)
            if not pending:
                return
            if not broker_down:
                self._requeue_lost(pending, finished, lambda target: send(by_target[target]))
            if self.stop is not None and self.stop.is_set():
                self._abandon(pending, finished, interrupted_outcome=True)
                return
            if time.monotonic() > deadline:  # after this round's results were read
                self._finish_from_database(pending, finished, since)
                if broker_down:
                    self._abandon(pending, finished, interrupted_outcome=False, broker_down=True)
                    raise BrokerUnavailable(
                        "the Celery broker (STOCKCAST_BROKER_URL) stopped answering during the "
                        "run and did not come back before its deadline"
                    )
                self._abandon(pending, finished, interrupted_outcome=False, budget=budget)
                return
            (self.stop or threading.Event()).wait(self.poll_seconds)

    def _read_round(self, pending: dict[str, Any], finished: Finished) -> bool:
        """Collect every finished task's result; True if the broker did not answer."""
        down = False
        for symbol, result in list(pending.items()):
            try:
                result = self._settle(symbol, result, pending)
                if result is None:
                    continue
                outcome, seconds = self._collect(symbol, result)
            except Exception as exc:
                if connection_error(exc):  # the result store is away: ask again next round
                    down = True  # (and not task by task: each ask may wait for a timeout)
                    break
                # an unreadable result fails its ticker, not the rest
                error = f"unreadable task result: {type(exc).__name__}: {exc}"
                outcome, seconds = failed(symbol, error, "internal_error"), 0.0
            del pending[symbol]
            finished(outcome, seconds)
        if down:
            log.warning("the broker does not answer: results unread", extra={"left": len(pending)})
        return down

    def _settle(self, symbol: str, newest: Any, pending: dict[str, Any]) -> Any | None:
        """The finished delivery of `symbol` to collect, or None to wait. Once a step was queued
        again (_requeue_lost), the first delivery that finishes wins; a later one that found
        the ticker locked (the earlier is alive after all, draining a warm shutdown) is set
        aside and the earlier is watched again."""
        for earlier in self._earlier.get(symbol, []):
            if earlier.ready():
                self._earlier.pop(symbol)
                return earlier
        if not newest.ready():
            return None
        earlier = self._earlier.get(symbol)
        if earlier and newest.successful():
            outcome = newest.get(disable_sync_subtasks=False).get("outcome", {})
            if outcome.get("status") == "skipped":  # locked by the earlier delivery
                pending[symbol] = earlier.pop()
                return None
        self._earlier.pop(symbol, None)
        return newest

    def _requeue_lost(
        self, pending: dict[str, Any], finished: Finished, resend: Callable[[str], Any]
    ) -> None:
        """Queue again each step whose worker stopped answering (`_lost_steps`), keeping the
        first delivery watched (`_settle`), or fail it once it was queued again
        `max_deliveries` times. Its ticker lock died with that worker's database connection
        (or expires), so the next worker can take it."""
        for target, worker in self._lost_steps(pending):
            lost = pending[target]
            try:
                if lost.ready():  # it finished after all: collected next round
                    continue
            except Exception:
                return  # the result store is away: the next rounds decide
            times = self._resent[target] = self._resent.get(target, 0) + 1
            name = worker_name(worker)
            if times > self.settings.max_deliveries:
                del pending[target]
                self._earlier.pop(target, None)
                finished(crashed(target, f"lost with worker {name} {times} times"), 0.0)
                continue
            try:
                again = resend(target)
            except Exception:  # the broker went away: keep watching the first
                log.warning("could not queue a lost worker's step again", exc_info=True)
                return
            log.warning(
                "worker stopped answering: its step is queued again",
                extra={"ticker": target, "worker": name, "times": times},
            )
            # Still watched: a worker that only stopped answering (a warm shutdown drains its
            # running step without answering) may yet deliver it (_settle).
            self._earlier.setdefault(target, []).append(lost)
            pending[target] = again

    def _lost_steps(self, pending: dict[str, Any]) -> list[tuple[str, str]]:
        """Every `liveness_seconds`, ask the workers what they run. Once a worker that answered
        before has not answered `LOST_AFTER` checks in a row, return the (ticker, worker) steps
        it had started (their task state names it) and no answering worker runs."""
        now = time.monotonic()
        if now < self._next_check:
            return []
        self._next_check = now + self.liveness_seconds
        try:
            active = app.control.inspect(timeout=2.0).active() or {}
        except Exception:  # the broker is away: the round's results say so
            return []
        self._known |= set(active)
        for worker in self._known:
            self._silent[worker] = 0 if worker in active else self._silent.get(worker, 0) + 1
        gone = {w for w in self._known if self._silent[w] >= LOST_AFTER}
        if not gone:
            return []
        running = {task.get("id") for tasks in active.values() for task in tasks or []}
        lost = []
        for target, result in pending.items():
            if result.id in running:
                continue
            try:
                meta = result.backend.get_task_meta(result.id)
            except Exception:
                return []  # the result store is away: the next rounds decide
            info = meta.get("result")
            host = info.get("hostname") if isinstance(info, dict) else None
            if meta.get("status") == "STARTED" and host in gone:
                lost.append((target, str(host)))
        return lost

    def _finish_from_database(
        self, pending: dict[str, Any], finished: Finished, since: datetime
    ) -> None:
        for symbol in list(pending):
            try:
                outcome = stored_since(self.engine, symbol, since)
            except Exception:  # the database is away too: the step stays unknown for now
                log.warning("could not read a step's outcome from the database", exc_info=True)
                return
            if outcome is not None:
                pending.pop(symbol).backend = None  # unread: do not ask the broker about it
                finished(outcome, 0.0)

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
            timeout = self.settings.step_timeout_seconds
            return failed(symbol, f"timed out after {timeout}s", "timeout"), 0.0
        if isinstance(error, WorkerLostError):
            return crashed(symbol, f"lost: {error}"), 0.0
        return failed(symbol, f"{type(error).__name__}: {error}", "internal_error"), 0.0

    def _abandon(
        self,
        pending: dict[str, Any],
        finished: Finished,
        *,
        interrupted_outcome: bool,
        budget: float = 0.0,
        broker_down: bool = False,
    ) -> None:
        """Revoke what has not run (a worker that already started finishes under its lock).
        Bounded: a broker that is down never holds the run past its deadline (and is not asked:
        the tasks expire with the run's deadline anyway)."""
        ids = [] if broker_down else [r.id for r in pending.values()]
        if broker_down:
            for result in pending.values():
                result.backend = None  # its __del__ would ask the broker that is down

        def revoke() -> None:
            try:
                app.control.revoke(ids)
            except Exception:
                log.warning("could not revoke queued tasks", exc_info=True)

        if ids and not bounded(revoke, 5.0):
            log.warning("revoking queued tasks timed out: the broker does not answer")
        for symbol in list(pending):
            if interrupted_outcome:
                outcome = interrupted(symbol)
            elif broker_down:
                outcome = failed(
                    symbol,
                    "the broker stopped answering before the step's result arrived, and the "
                    "database shows no forecast from it",
                    "broker_unavailable",
                )
            else:
                outcome = failed(symbol, f"no worker finished it within {budget:.0f}s", "timeout")
            finished(outcome, 0.0)
        pending.clear()
