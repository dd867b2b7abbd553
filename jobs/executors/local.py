"""The local executor (the embedded default): a pool of long-lived worker processes on this
machine. Transport only: each worker runs jobs.executors.base.run_step.

Each worker imports TensorFlow once and handles many tickers, is replaced after
`worker_max_tasks` tickers so memory stays flat, and dies with the run that started it. A step
past the step timeout kills only its worker, which is replaced. Workers start with the settings
given to the pool; each task carries the run's configuration, and a worker whose settings
differ refuses it (base.config_mismatch).
"""

from __future__ import annotations

import collections
import contextlib
import multiprocessing
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from forecaster.settings import Settings
from jobs.executors.base import (
    Finished,
    Started,
    StepResult,
    StepTask,
    bootstrap_worker,
    crashed,
    failed,
    interrupted,
    peak_rss_mb,
    quiet_tensorflow,
    run_step,
    tf_threads,
    timed_out,
)


def local_worker_name(slot: int, pid: int | None) -> str:
    """Opaque: the pool slot and the process, never the host (GET /v1/runs shows it)."""
    return f"local-{slot + 1}.{pid}"


def _worker_main(
    conn: Connection, settings: Settings, parent_pid: int, slot: int, threads: int
) -> None:
    """A pool worker: bootstrap once, then run tasks until told to stop or recycled."""
    name = local_worker_name(slot, os.getpid())
    engine = bootstrap_worker(settings, threads=threads, parent_pid=parent_pid)
    try:
        for _ in range(settings.worker_max_tasks):
            try:
                data = conn.recv()
            except EOFError:  # the run closed the pool
                return
            if data is None:
                return
            task = StepTask.from_json(data)
            t0 = time.perf_counter()
            try:
                result = run_step(task, settings, engine=engine, worker=name)
            except BaseException as exc:  # Ctrl-C reaches the whole process group: report, go on
                ctrl_c = isinstance(exc, KeyboardInterrupt)
                error = "interrupted (Ctrl-C)" if ctrl_c else f"{type(exc).__name__}: {exc}"
                outcome = failed(task.target, error, "interrupted" if ctrl_c else "internal_error")
                outcome.worker = name
                result = StepResult(outcome, time.perf_counter() - t0, peak_rss_mb())
            conn.send(result)
    finally:
        engine.dispose()
        conn.close()


@dataclass(eq=False)
class _Worker:
    slot: int
    proc: Any  # multiprocessing's SpawnProcess
    conn: Connection
    name: str
    done: int = 0
    task: str | None = None
    since: float = 0.0


@dataclass
class LocalPool:
    """Long-lived worker processes on this machine, fed one task at a time."""

    settings: Settings  # what the workers start with
    workers: int = 0  # 0: one per core
    stop: threading.Event | None = None
    name: str = "local"
    spawned: int = 0  # worker processes started so far (recycling included)
    peak_rss: dict[str, float] = field(default_factory=dict)  # worker name -> MiB

    def __post_init__(self) -> None:
        self.workers = self.workers or os.cpu_count() or 1
        self._ctx = multiprocessing.get_context("spawn")  # fresh interpreter: no inherited TF state
        self._slots: list[_Worker | None] = []
        self._retired: list[_Worker] = []
        self._threads = 1
        self._finished: Finished = lambda outcome, seconds: None

    def run(self, tasks: Sequence[StepTask], started: Started, finished: Finished) -> None:
        pending = collections.deque(tasks)
        size = min(self.workers, len(pending))
        self._threads = tf_threads(size, self.settings.tf_threads)
        self._slots = [None] * size
        self._retired = []
        self._finished = finished
        try:
            while pending or self._busy():
                if self.stop is not None and self.stop.is_set():
                    self._shut_down(pending, started, finished)
                    break
                self._hand_out(pending, started)
                busy = self._busy()
                wait([w.conn for w in busy] + [w.proc.sentinel for w in busy], timeout=0.5)
                for worker in busy:
                    self._check(worker)
                self._retired[:] = [w for w in self._retired if not _reaped(w)]
        finally:
            for left in self._slots:
                if left is not None:
                    self._retire(left)
            for worker in self._retired:
                _reap(worker)

    def _busy(self) -> list[_Worker]:
        return [w for w in self._slots if w is not None and w.task]

    def _spawn(self, slot: int) -> _Worker:
        quiet_tensorflow()
        reader, writer = self._ctx.Pipe(duplex=True)
        self.spawned += 1
        proc = self._ctx.Process(
            target=_worker_main,
            args=(writer, self.settings, os.getpid(), slot, self._threads),
            name=f"stockcast-worker-{slot + 1}",
            daemon=True,
        )
        proc.start()
        writer.close()
        return _Worker(slot, proc, reader, local_worker_name(slot, proc.pid))

    def _hand_out(self, pending: collections.deque[StepTask], started: Started) -> None:
        """A task to every idle worker (a new worker in an empty slot)."""
        for slot, worker in enumerate(self._slots):
            if not pending or (worker is not None and worker.task):
                continue
            if worker is None:
                worker = self._slots[slot] = self._spawn(slot)
            task = pending[0]
            try:
                worker.conn.send(task.to_json())
            except (OSError, ValueError):  # it died while idle: a fresh one next round
                self._retire(worker)
                continue
            pending.popleft()
            started(task.target)
            worker.task, worker.since = task.target, time.monotonic()

    def _check(self, worker: _Worker) -> None:
        """A busy worker's news: its result, its death, or its time running out."""
        result: StepResult | None = None
        if worker.conn.poll():
            with contextlib.suppress(EOFError, OSError):
                result = worker.conn.recv()
        timeout = self.settings.step_timeout_seconds
        if result is not None:
            self.peak_rss[worker.name] = max(self.peak_rss.get(worker.name, 0.0), result.rss_mb)
            worker.done += 1
            self._end(worker, result.outcome, result.seconds)
            if worker.done >= self.settings.worker_max_tasks:
                self._retire(worker)  # recycled: it exits after this many tickers
        elif not worker.proc.is_alive():
            self._fail(
                worker, crashed(worker.task or "", f"died (exit code {worker.proc.exitcode})")
            )
        elif time.monotonic() - worker.since > timeout:  # only this worker is killed
            self._fail(worker, timed_out(worker.task or "", timeout))

    def _end(self, worker: _Worker, outcome: Any, seconds: float) -> None:
        outcome.worker = outcome.worker or worker.name
        worker.task = None
        self._finished(outcome, seconds)

    def _retire(self, worker: _Worker) -> None:
        """Free the slot at once; the process is asked to exit and reaped later, so a TensorFlow
        interpreter shutting down never holds up the other workers. A busy one is killed."""
        if worker.task:
            worker.proc.kill()
        else:
            with contextlib.suppress(OSError, ValueError):
                worker.conn.send(None)
        self._retired.append(worker)
        self._slots[worker.slot] = None

    def _fail(self, worker: _Worker, outcome: Any) -> None:
        """The worker's step ended without a result: kill and replace the worker, record why."""
        seconds = time.monotonic() - worker.since
        self._retire(worker)
        self._end(worker, outcome, seconds)

    def _shut_down(
        self, pending: collections.deque[StepTask], started: Started, finished: Finished
    ) -> None:
        for worker in self._busy():
            self._fail(
                worker, failed(worker.task or "", "interrupted: shutting down", "interrupted")
            )
        while pending:
            task = pending.popleft()
            started(task.target)
            finished(interrupted(task.target), 0.0)


def _reaped(worker: _Worker) -> bool:
    """True (and its pipe closed) once a retired worker's process has exited."""
    if worker.proc.is_alive():
        return False
    worker.proc.join()
    worker.conn.close()
    return True


def _reap(worker: _Worker, grace: float = 5.0) -> None:
    """Wait for a retired worker to exit; kill it past the grace time."""
    worker.proc.join(grace)
    if worker.proc.is_alive():
        worker.proc.kill()
        worker.proc.join(10)
    worker.conn.close()
