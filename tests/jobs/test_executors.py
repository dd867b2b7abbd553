"""The local executor: a pool of long-lived worker processes (real spawned processes, real Keras
training on synthetic tickers)."""

from __future__ import annotations

import threading
from datetime import date

import pytest
from jobhelpers import run_pipeline
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from forecaster import service, storage
from forecaster.providers.synthetic import SyntheticProvider
from forecaster.refresh import RefreshOptions, StepOutcome
from forecaster.settings import Settings
from jobs.executors import LocalPool, StepTask
from jobs.executors.base import tf_threads

pytestmark = pytest.mark.slow
SYMBOLS = [f"SYN-RW-{n}" for n in range(1, 6)]


def register(sessions: sessionmaker[Session], symbols: list[str]) -> None:
    with sessions.begin() as s:
        for symbol in symbols:  # ~280 days each: enough for the tiny backtest, quick to train
            service.backfill_ticker(s, SyntheticProvider(), symbol, date(2017, 12, 1), None)


def steps_of(sessions: sessionmaker[Session], run_id: int) -> list[storage.JobStep]:
    with sessions() as s:
        return list(s.scalars(select(storage.JobStep).where(storage.JobStep.run_id == run_id)))


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # PostgreSQL: test_celery
def test_two_workers_share_the_universe_each_ticker_once(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    register(sessions, SYMBOLS)
    # Recycled after 2 tickers: 5 tickers on 2 workers need at least 3 worker processes.
    pool_settings = settings.replace(executor="local", worker_max_tasks=2)
    report = run_pipeline(pool_settings, SYMBOLS, workers=2)
    assert report.status == "succeeded", [o.error for o in report.steps]
    assert [o.ticker for o in report.steps] == SYMBOLS  # reported in the run's order
    steps = steps_of(sessions, report.run_id)
    assert sorted(s.ticker for s in steps) == sorted(SYMBOLS)
    assert all(s.status == "succeeded" and s.promoted is not None for s in steps)
    workers = {s.worker for s in steps}
    slots = {w.split(".")[0] for w in workers if w}
    assert slots == {"local-1", "local-2"}  # both workers used
    assert len(workers) >= 3  # recycled: new processes took over the slots
    pool = report.executor
    assert isinstance(pool, LocalPool) and pool.spawned >= 3
    assert set(pool.peak_rss) == workers and all(mb > 50 for mb in pool.peak_rss.values())
    with sessions() as s:
        for symbol in SYMBOLS:  # each trained exactly once
            ticker = storage.get_ticker(s, symbol)
            assert ticker is not None
            assert [v.version for v in storage.model_versions(s, ticker.id)] == [1]
            assert storage.latest_prediction(s, ticker.id) is not None


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_stop_ends_the_running_steps_and_skips_the_rest(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    register(sessions, SYMBOLS[:3])
    stop = threading.Event()
    seen: list[tuple[str, str | None]] = []

    def started(symbol: str) -> None:
        seen.append((symbol, None))
        stop.set()  # shut down as soon as the first ticker is handed out

    def finished(outcome: StepOutcome, seconds: float) -> None:
        seen.append((outcome.ticker, outcome.status))

    pool = LocalPool(settings.replace(executor="local"), workers=1, stop=stop)
    pool.run(
        [StepTask.for_ticker(s, RefreshOptions(), settings) for s in SYMBOLS[:3]], started, finished
    )
    assert seen[:2] == [(SYMBOLS[0], None), (SYMBOLS[0], "failed")]
    assert seen[2:] == [
        (SYMBOLS[1], None),
        (SYMBOLS[1], "skipped"),
        (SYMBOLS[2], None),
        (SYMBOLS[2], "skipped"),
    ]


def test_tensorflow_threads_are_shared_out() -> None:
    assert tf_threads(1) >= 1
    assert tf_threads(10_000) == 1


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_pool_worker_of_another_configuration_refuses_and_trains_nothing(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    register(sessions, SYMBOLS[:2])
    run = settings.replace(executor="local")  # the run's configuration: highway "ar"
    workers = run.replace(model=run.model.replace(highway="none"))
    outcomes: list[StepOutcome] = []
    pool = LocalPool(workers, workers=1)
    tasks = [StepTask.for_ticker(s, RefreshOptions(fetch=False), run) for s in SYMBOLS[:2]]
    pool.run(tasks, lambda symbol: None, lambda outcome, seconds: outcomes.append(outcome))
    assert [(o.ticker, o.status, o.error_code) for o in outcomes] == [
        (SYMBOLS[0], "failed", "config_mismatch"),
        (SYMBOLS[1], "failed", "config_mismatch"),
    ]
    assert all("model.highway=none (run: ar)" in (o.error or "") for o in outcomes)
    assert all((o.worker or "").startswith("local-1.") for o in outcomes)
    with sessions() as s:
        for symbol in SYMBOLS[:2]:
            ticker = storage.get_ticker(s, symbol)
            assert ticker is not None and storage.model_versions(s, ticker.id) == []
