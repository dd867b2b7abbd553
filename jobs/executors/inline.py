"""The inline executor: every step in the run's own process, one after another (tests,
debugging). Transport only: the step itself is jobs.executors.base.run_step."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine

from forecaster.refresh import ProviderFactory
from forecaster.settings import Settings
from jobs.executors.base import Finished, Started, StepTask, interrupted, run_step


@dataclass
class InlineExecutor:
    settings: Settings  # this "worker's" settings: a task of another configuration is refused
    engine: Engine
    stop: threading.Event | None = None
    provider_factory: ProviderFactory | None = None
    name: str = "inline"

    def run(self, tasks: Sequence[StepTask], started: Started, finished: Finished) -> None:
        for task in tasks:
            started(task.target)
            if self.stop is not None and self.stop.is_set():
                finished(interrupted(task.target), 0.0)
                continue
            result = run_step(
                task,
                self.settings,
                engine=self.engine,
                worker="inline",
                provider_factory=self.provider_factory,
            )
            finished(result.outcome, result.seconds)
