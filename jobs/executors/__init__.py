"""Where each step runs: one interface, three transports (settings.executor), one `run_step`.

- `base`: the task (plain data with the run's configuration), `run_step` that every worker
  calls, the worker bootstrap and the failure outcomes.
- `inline`: in the run's own process, one step after another (tests, debugging).
- `local` (the embedded default): a pool of long-lived worker processes on this machine.
- `celery`: one Celery task per step through the broker; `stockcast worker` processes on any
  machine run them (imported only when used).

Whatever runs a step takes the ticker's lock itself (forecaster.refresh.refresh_ticker_locked),
so the lock lives exactly as long as the process that writes.
"""

from jobs.executors.base import Executor, StepTask, run_step
from jobs.executors.inline import InlineExecutor
from jobs.executors.local import LocalPool

__all__ = ["Executor", "InlineExecutor", "LocalPool", "StepTask", "run_step"]
