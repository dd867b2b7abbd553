"""Where each ticker's step runs: one interface, three executors (settings.executor).

- `local` (the embedded default): a pool of long-lived worker processes on this machine
  (`LocalPool`). Each imports TensorFlow once and handles many tickers, is replaced after
  `worker_max_tasks` tickers so memory stays flat, and dies with the run that started it.
  A step past the step timeout kills only its worker, which is replaced.
- `celery`: one Celery task per ticker through the broker (jobs.celery_app); `stockcast worker`
  processes on any machine run them.
- `inline`: in the run's own process, one ticker after another (tests, debugging).

Whatever runs the step takes the ticker's lock itself (forecaster.service.refresh_ticker_locked),
so the lock lives exactly as long as the process that writes. The executor reports each step
to the run (jobs.pipeline) through two callbacks, always on the run's thread: `started(symbol)`
when the step is handed to a worker (or queued), `finished(outcome, seconds)` when it ended.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import logging
import multiprocessing
import os
import resource
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any, Protocol

from sqlalchemy import Engine

from forecaster.service import (
    ProviderFactory,
    RefreshOptions,
    StepOutcome,
    refresh_ticker_locked,
)
from forecaster.settings import Settings

log = logging.getLogger(__name__)

Started = Callable[[str], None]
Finished = Callable[[StepOutcome, float], None]

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_EXIT_ORPHANED = 70  # the parent died: the work was abandoned


class Executor(Protocol):
    name: str

    def run(self, symbols: Sequence[str], started: Started, finished: Finished) -> None:
        """Run every symbol's step; report each through the callbacks; return when all ended."""
        ...


def interrupted(symbol: str) -> StepOutcome:
    return StepOutcome(symbol, status="skipped", notes=["run interrupted"])


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --------------------------------------------------------------------------- inline


@dataclass
class InlineExecutor:
    settings: Settings
    options: RefreshOptions
    stop: threading.Event | None = None
    provider_factory: ProviderFactory | None = None
    engine: Engine | None = None
    name: str = "inline"

    def run(self, symbols: Sequence[str], started: Started, finished: Finished) -> None:
        for symbol in symbols:
            started(symbol)
            if self.stop is not None and self.stop.is_set():
                finished(interrupted(symbol), 0.0)
                continue
            t0 = time.perf_counter()
            outcome = refresh_ticker_locked(
                self.settings,
                symbol,
                self.options,
                provider_factory=self.provider_factory,
                engine=self.engine,
            )
            outcome.worker = "inline"
            finished(outcome, time.perf_counter() - t0)


# --------------------------------------------------------------------------- local pool


def die_with_parent(parent_pid: int, poll_seconds: float = 0.5) -> None:
    """End this process as soon as the process that started it is gone.

    A step whose run was killed must not go on training and writing on its own: the run's record
    would say nothing of it, and a new run could not tell it apart from a dead one. On Linux the
    kernel sends SIGKILL when the parent dies (PR_SET_PDEATHSIG); a watcher thread covers other
    systems and a parent that died before the request was made.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # no prctl: the watcher alone
            pass

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_seconds)
        os._exit(_EXIT_ORPHANED)

    if os.getppid() != parent_pid:
        os._exit(_EXIT_ORPHANED)
    threading.Thread(target=watch, name="stockcast-parent-watch", daemon=True).start()


def local_worker_name(slot: int, pid: int | None) -> str:
    """Opaque: the pool slot and the process, never the host (GET /v1/runs shows it)."""
    return f"local-{slot + 1}.{pid}"


def tf_threads(workers: int) -> int:
    """TensorFlow threads per worker: the cores shared out, at least one each."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def _worker_main(
    conn: Connection, settings: Settings, parent_pid: int, slot: int, threads: int
) -> None:
    """A pool worker: import TensorFlow once, then run steps until told to stop or recycled."""
    die_with_parent(parent_pid)
    name = local_worker_name(slot, os.getpid())
    from forecaster import storage
    from forecaster.logs import configure_logging
    from forecaster.model import warm_up

    configure_logging(settings.log_level, settings.log_format)
    warm_up(threads)
    engine = storage.make_engine(
        settings.resolved_database_url, timeout=settings.db_timeout_seconds
    )
    done = 0
    try:
        while done < settings.worker_max_tasks:
            try:
                task = conn.recv()
            except EOFError:  # the run closed the pool
                return
            if task is None:
                return
            symbol, options = task
            t0 = time.perf_counter()
            try:
                outcome = refresh_ticker_locked(settings, symbol, options, engine=engine)
            except BaseException as exc:  # KeyboardInterrupt included: report, then exit
                outcome = StepOutcome(
                    symbol,
                    status="failed",
                    error=f"{type(exc).__name__}: {exc}",
                    error_code="interrupted"
                    if isinstance(exc, KeyboardInterrupt)
                    else "internal_error",
                )
            outcome.worker = name
            done += 1
            conn.send((outcome, time.perf_counter() - t0, peak_rss_mb()))
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
    """Long-lived worker processes on this machine, fed one ticker at a time."""

    settings: Settings
    options: RefreshOptions
    workers: int = 0  # 0: one per core
    stop: threading.Event | None = None
    name: str = "local"
    spawned: int = 0  # worker processes started so far (recycling included)
    peak_rss: dict[str, float] = field(default_factory=dict)  # worker name -> MiB

    def __post_init__(self) -> None:
        self.workers = self.workers or os.cpu_count() or 1
        self._ctx = multiprocessing.get_context("spawn")  # fresh interpreter: no inherited TF state

    def _spawn(self, slot: int, threads: int) -> _Worker:
        # Children inherit TensorFlow's C++ log level from the environment at start-up.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        reader, writer = self._ctx.Pipe(duplex=True)
        self.spawned += 1
        proc = self._ctx.Process(
            target=_worker_main,
            args=(writer, self.settings, os.getpid(), slot, threads),
            name=f"stockcast-worker-{slot + 1}",
            daemon=True,
        )
        proc.start()
        writer.close()
        return _Worker(slot, proc, reader, local_worker_name(slot, proc.pid))

    def run(self, symbols: Sequence[str], started: Started, finished: Finished) -> None:
        pending = collections.deque(symbols)
        size = min(self.workers, len(pending))
        threads = tf_threads(size)
        slots: list[_Worker | None] = [None] * size
        timeout = self.settings.step_timeout_seconds

        def end(worker: _Worker, outcome: StepOutcome, seconds: float) -> None:
            outcome.worker = outcome.worker or worker.name
            worker.task = None
            finished(outcome, seconds)

        retired: list[_Worker] = []

        def retire(worker: _Worker) -> None:
            """Free the slot at once; the process is asked to exit and reaped later, so a
            TensorFlow interpreter shutting down never holds up the other workers."""
            if worker.task:
                worker.proc.kill()
            else:
                with contextlib.suppress(OSError, ValueError):
                    worker.conn.send(None)
            retired.append(worker)
            slots[worker.slot] = None

        def fail(worker: _Worker, error: str, code: str) -> None:
            """The worker's step ended without an outcome: kill and replace the worker (retire
            kills a busy one), record why."""
            symbol, seconds = worker.task or "", time.monotonic() - worker.since
            retire(worker)
            end(worker, StepOutcome(symbol, status="failed", error=error, error_code=code), seconds)

        try:
            while pending or any(w is not None and w.task for w in slots):
                if self.stop is not None and self.stop.is_set():
                    for worker in [w for w in slots if w is not None and w.task]:
                        fail(worker, "interrupted: shutting down", "interrupted")
                    while pending:
                        symbol = pending.popleft()
                        started(symbol)
                        finished(interrupted(symbol), 0.0)
                    break
                for slot in range(size):  # hand a ticker to every idle worker
                    idle = slots[slot]
                    if not pending or (idle is not None and idle.task):
                        continue
                    if idle is None:
                        idle = slots[slot] = self._spawn(slot, threads)
                    symbol = pending[0]
                    try:
                        idle.conn.send((symbol, self.options))
                    except (OSError, ValueError):  # it died while idle: a fresh one next round
                        retire(idle)
                        continue
                    pending.popleft()
                    started(symbol)
                    idle.task, idle.since = symbol, time.monotonic()
                busy = [w for w in slots if w is not None and w.task]
                wait([w.conn for w in busy] + [w.proc.sentinel for w in busy], timeout=0.5)
                for worker in busy:
                    message = None
                    if worker.conn.poll():
                        try:
                            message = worker.conn.recv()
                        except (EOFError, OSError):
                            message = None
                    if message is not None:
                        outcome, seconds, rss = message
                        self.peak_rss[worker.name] = max(self.peak_rss.get(worker.name, 0.0), rss)
                        worker.done += 1
                        end(worker, outcome, seconds)
                        if worker.done >= self.settings.worker_max_tasks:
                            retire(worker)  # recycled: it exits after this many tickers
                    elif not worker.proc.is_alive():
                        code = worker.proc.exitcode
                        fail(worker, f"worker process died (exit code {code})", "step_crashed")
                    elif time.monotonic() - worker.since > timeout:  # only this worker is killed
                        fail(worker, f"timed out after {timeout}s and was killed", "timeout")
                retired[:] = [w for w in retired if not _reaped(w)]
        finally:
            for left in slots:
                if left is not None:
                    retire(left)
            for worker in retired:
                _reap(worker)


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
