"""Where a ticker's step runs: `run_in_child` runs it in a fresh child process.

The child takes the ticker's lock itself (forecaster.service.refresh_ticker_locked) and dies with
its parent, so a step never outlives the run that owns it, and its lock never outlives the step.

A long-lived scheduler that trains model after model in one process grows without bound
(keras-team/keras#17458), and a child can be killed on timeout or shutdown without harm: every
stage of the step commits on its own, so a killed child leaves the previous state or the next.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from multiprocessing.connection import Connection

from forecaster.service import RefreshOptions, StepOutcome, refresh_ticker_locked
from forecaster.settings import Settings

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_EXIT_ORPHANED = 70  # the parent died: the step was abandoned


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


def _child_main(
    conn: Connection, settings: Settings, symbol: str, options: RefreshOptions, parent_pid: int
) -> None:
    """Entry point of the per-ticker child process: do the step, send back the outcome."""
    die_with_parent(parent_pid)
    from forecaster.logs import configure_logging

    configure_logging(settings.log_level, settings.log_format)
    try:
        outcome = refresh_ticker_locked(settings, symbol, options)
    except BaseException as exc:  # KeyboardInterrupt included: report, then exit
        outcome = StepOutcome(
            symbol,
            status="failed",
            error=f"{type(exc).__name__}: {exc}",
            error_code="interrupted" if isinstance(exc, KeyboardInterrupt) else "internal_error",
        )
    conn.send(outcome)
    conn.close()


def run_in_child(
    settings: Settings,
    symbol: str,
    options: RefreshOptions,
    stop: threading.Event | None = None,
) -> StepOutcome:
    """Refresh `symbol` in a spawned child, which takes the ticker's lock itself and dies with
    this process; killed after settings.step_timeout_seconds, or terminated once `stop` is set."""
    # Children inherit TensorFlow's C++ log level from the environment at start-up.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    ctx = multiprocessing.get_context("spawn")  # fresh interpreter: no inherited TF/DB state
    reader, writer = ctx.Pipe(duplex=False)
    proc = ctx.Process(
        target=_child_main,
        args=(writer, settings, symbol, options, os.getpid()),
        name=f"stockcast-step-{symbol}",
        daemon=True,
    )
    proc.start()
    writer.close()
    deadline = time.monotonic() + settings.step_timeout_seconds
    try:
        while True:
            if reader.poll(0.2):
                try:
                    return reader.recv()
                except EOFError:
                    pass  # the child died while sending: report it as a crash below
            if not proc.is_alive() and not reader.poll(0):
                proc.join()
                return StepOutcome(
                    symbol,
                    status="failed",
                    error=f"step process died (exit code {proc.exitcode}) before reporting",
                    error_code="step_crashed",
                )
            if stop is not None and stop.is_set():
                proc.terminate()
                return StepOutcome(
                    symbol,
                    status="failed",
                    error="interrupted: shutting down",
                    error_code="interrupted",
                )
            if time.monotonic() > deadline:
                proc.kill()
                return StepOutcome(
                    symbol,
                    status="failed",
                    error=f"timed out after {settings.step_timeout_seconds}s and was killed",
                    error_code="timeout",
                )
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
            proc.join()
        reader.close()
