"""What every executor shares, the way APScheduler's `executors/base.py` holds `run_job`: the task
(plain data), the one in-worker `run_step`, the worker bootstrap and the failure outcomes.

An executor (inline, local, celery) only moves tasks to a worker and outcomes back; whatever runs
a step runs it through `run_step`, so a step behaves the same on every executor.

A task carries the run's training configuration (forecaster.training.run_config) and its hash. A
worker whose own settings give another configuration (another `STOCKCAST_HIGHWAY`, epochs,
release, ...) refuses the step: it is recorded `failed` with error code `config_mismatch` and a
one-line reason, and nothing is trained. A worker never trains another model than the run's.
"""

from __future__ import annotations

import ctypes
import logging
import os
import resource
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any, Protocol

from sqlalchemy import Engine

from forecaster.refresh import ProviderFactory, RefreshOptions, StepOutcome
from forecaster.settings import Settings
from forecaster.training import config_hash, run_config

log = logging.getLogger(__name__)

Started = Callable[[str], None]
Finished = Callable[[StepOutcome, float], None]

TICKER = "ticker"  # one ticker's refresh: fetch -> validate -> train -> evaluate -> predict
UNIVERSE = "universe"  # one fit for every ticker, then each ticker's version registered
FORECAST = "forecast"  # one ticker's forecast from its champion (after a universe fit)
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_EXIT_ORPHANED = 70  # the parent died: the work was abandoned


# --------------------------------------------------------------------------- the task


@dataclass(frozen=True)
class StepTask:
    """One step as plain data: what to do (`kind`), on what (`target`), how (`options`), and the
    run's configuration to do it with. JSON-serialisable (`to_json`), so any transport carries it.

    `kind` names the step's handler in `run_step`; a universe-wide fit is one more kind.
    """

    kind: str
    target: str
    options: RefreshOptions
    config: dict[str, Any] = field(default_factory=dict)
    config_hash: str = ""
    symbols: tuple[str, ...] = ()  # a universe step's tickers

    @classmethod
    def for_ticker(cls, symbol: str, options: RefreshOptions, settings: Settings) -> StepTask:
        config = run_config(settings)
        return cls(TICKER, symbol, options, config, config_hash(config))

    @classmethod
    def for_universe(
        cls, symbols: list[str], options: RefreshOptions, settings: Settings
    ) -> StepTask:
        config = run_config(settings)
        return cls(UNIVERSE, UNIVERSE, options, config, config_hash(config), tuple(symbols))

    @classmethod
    def for_forecast(cls, symbol: str, settings: Settings) -> StepTask:
        config = run_config(settings)
        return cls(
            FORECAST, symbol, RefreshOptions(fetch=False, train=False), config, config_hash(config)
        )

    def to_json(self) -> dict[str, Any]:
        options = asdict(self.options)
        options["today"] = self.options.today.isoformat() if self.options.today else None
        return {
            "kind": self.kind,
            "target": self.target,
            "options": options,
            "config": self.config,
            "config_hash": self.config_hash,
            "symbols": list(self.symbols),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StepTask:
        raw = data.get("options") or {}
        today = raw.get("today")
        options = RefreshOptions(
            fetch=bool(raw.get("fetch", True)),
            train=bool(raw.get("train", True)),
            force_train=bool(raw.get("force_train", False)),
            today=date.fromisoformat(today) if today else None,
        )
        return cls(
            str(data["kind"]),
            str(data["target"]),
            options,
            dict(data.get("config") or {}),
            str(data.get("config_hash", "")),
            tuple(str(s) for s in data.get("symbols") or ()),
        )


def config_mismatch(task: StepTask, settings: Settings) -> str | None:
    """Why a worker with `settings` cannot honour the task's configuration (one line), or None."""
    if config_hash(task.config) != task.config_hash:
        return "the step's configuration does not match its hash; refused"
    mine = run_config(settings)
    if mine == task.config:
        return None
    ours, theirs = _flat(mine), _flat(task.config)
    differ = sorted(k for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k))
    shown = ", ".join(
        f"{k}={_value(ours.get(k))} (run: {_value(theirs.get(k))})" for k in differ[:3]
    )
    more = f" and {len(differ) - 3} more" if len(differ) > 3 else ""
    return f"the worker's configuration differs from the run's: {shown}{more}; refused"


def _flat(config: dict[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    return flat


def _value(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    text = "unset" if value is None else str(value)
    return text if len(text) <= 24 else text[:24] + "..."


# --------------------------------------------------------------------------- failure outcomes


def failed(target: str, error: str, code: str) -> StepOutcome:
    return StepOutcome(target, status="failed", error=error, error_code=code)


def interrupted(target: str) -> StepOutcome:
    """A step the run never started because it was shutting down."""
    return StepOutcome(target, status="skipped", notes=["run interrupted"])


def crashed(target: str, detail: str) -> StepOutcome:
    return failed(target, f"worker process {detail}", "step_crashed")


def timed_out(target: str, seconds: int) -> StepOutcome:
    return failed(target, f"timed out after {seconds}s and was killed", "timeout")


# --------------------------------------------------------------------------- running a step


@dataclass
class StepResult:
    """What a worker sends back: the outcome, the step's seconds and the worker's peak RSS."""

    outcome: StepOutcome
    seconds: float
    rss_mb: float


def _refresh(
    task: StepTask, settings: Settings, engine: Engine, provider_factory: ProviderFactory | None
) -> StepOutcome:
    from forecaster.refresh import refresh_ticker_locked

    return refresh_ticker_locked(
        settings, task.target, task.options, provider_factory=provider_factory, engine=engine
    )


def _universe(
    task: StepTask, settings: Settings, engine: Engine, provider_factory: ProviderFactory | None
) -> StepOutcome:
    from forecaster.universe_refresh import refresh_universe_locked

    return refresh_universe_locked(settings, list(task.symbols), task.options, engine)


def _forecast(
    task: StepTask, settings: Settings, engine: Engine, provider_factory: ProviderFactory | None
) -> StepOutcome:
    from forecaster.universe_refresh import forecast_locked

    return forecast_locked(settings, task.target, engine)


Handler = Callable[[StepTask, Settings, Engine, ProviderFactory | None], StepOutcome]
HANDLERS: dict[str, Handler] = {TICKER: _refresh, UNIVERSE: _universe, FORECAST: _forecast}


def run_step(
    task: StepTask,
    settings: Settings,
    *,
    engine: Engine,
    worker: str,
    provider_factory: ProviderFactory | None = None,
) -> StepResult:
    """Run one task in this (worker) process, with this worker's settings, and say what happened.

    Every executor calls it. The step's handler takes its own lock; an error it raises fails
    this step only (`internal_error`), and a task whose configuration the worker cannot honour
    is refused (`config_mismatch`) before anything is read or written.
    """
    t0 = time.perf_counter()
    reason = config_mismatch(task, settings)
    handler = HANDLERS.get(task.kind)
    if reason is not None:
        log.warning(
            "step refused",
            extra={"target": task.target, "worker": worker, "reason": reason},
        )
        outcome = failed(task.target, reason, "config_mismatch")
    elif handler is None:
        outcome = failed(task.target, f"unknown step kind {task.kind!r}", "config_mismatch")
    else:
        try:
            outcome = handler(task, settings, engine, provider_factory)
        except Exception as exc:
            log.exception("step failed", extra={"target": task.target, "worker": worker})
            outcome = failed(task.target, f"{type(exc).__name__}: {exc}", "internal_error")
    outcome.worker = outcome.worker or worker
    return StepResult(outcome, time.perf_counter() - t0, peak_rss_mb())


def refused(outcomes: Sequence[StepOutcome]) -> str | None:
    """The run's one line when workers refused steps (config_mismatch), else None."""
    bad = [o for o in outcomes if o.error_code == "config_mismatch"]
    if not bad:
        return None
    steps = "step" if len(bad) == 1 else "steps"
    return f"{len(bad)} {steps} refused ({bad[0].ticker}: {bad[0].error})"


# --------------------------------------------------------------------------- worker bootstrap


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def tf_threads(workers: int, configured: int = 0) -> int:
    """TensorFlow threads per worker: STOCKCAST_TF_THREADS, or the cores shared out, at least
    one each."""
    return configured or max(1, (os.cpu_count() or 1) // max(1, workers))


def quiet_tensorflow() -> None:
    """TensorFlow's C++ log level, set before any worker process imports it (children inherit
    it from the environment at start-up)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def preload_tensorflow(settings: Settings) -> None:
    """Import TensorFlow in a process whose pool processes are forked from it (a Celery worker's
    main process): each pool process, and each one that replaces a process lost or recycled,
    inherits the module instead of importing it again (5-7 s of CPU). The import only: no
    operation has run, so TensorFlow has no thread pools yet, and each pool process still sizes
    its own (bootstrap_worker)."""
    from forecaster.network import tf_runtime, use_gpu

    use_gpu(settings.use_gpu)
    tf_runtime()  # quiet: it sets TensorFlow's log level before the import


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


def bootstrap_worker(settings: Settings, *, threads: int, parent_pid: int) -> Engine:
    """A worker process starts here (local pool and Celery alike): die with the process that
    started it, log like the rest of stockcast, import TensorFlow once with its share of the
    cores, and open the database engine its steps share."""
    from forecaster import storage
    from forecaster.logs import configure_logging
    from forecaster.network import use_gpu, warm_up

    die_with_parent(parent_pid)
    configure_logging(settings.log_level, settings.log_format)
    use_gpu(settings.use_gpu)
    warm_up(threads)
    return storage.make_engine(settings.resolved_database_url, timeout=settings.db_timeout_seconds)


class Executor(Protocol):
    name: str

    def run(self, tasks: Sequence[StepTask], started: Started, finished: Finished) -> None:
        """Run every task; report each through the callbacks (always on the run's thread):
        `started(target)` when it is handed out, `finished(outcome, seconds)` when it ended."""
        ...
