"""Where a ticker's step runs: `run_in_child` runs `refresh_ticker` in a fresh child process.

A long-lived scheduler that trains model after model in one process grows without bound
(keras-team/keras#17458), and a child can be killed on timeout or shutdown without harm: every
stage of the step commits on its own, so a killed child leaves the previous state or the next.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from multiprocessing.connection import Connection

from forecaster.service import RefreshOptions, StepOutcome, refresh_ticker
from forecaster.settings import Settings


def _child_main(conn: Connection, settings: Settings, symbol: str, options: RefreshOptions) -> None:
    """Entry point of the per-ticker child process: do the step, send back the outcome."""
    from forecaster.logs import configure_logging

    configure_logging(settings.log_level, settings.log_format)
    try:
        outcome = refresh_ticker(settings, symbol, options)
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
    """Refresh `symbol` in a spawned child; killed after settings.step_timeout_seconds, or
    terminated as soon as `stop` is set. The caller holds the ticker's lock."""
    # Children inherit TensorFlow's C++ log level from the environment at start-up.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    ctx = multiprocessing.get_context("spawn")  # fresh interpreter: no inherited TF/DB state
    reader, writer = ctx.Pipe(duplex=False)
    proc = ctx.Process(
        target=_child_main,
        args=(writer, settings, symbol, options),
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
