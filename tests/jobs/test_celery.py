"""The Celery executor on the real Redis broker with real `stockcast worker` processes: the
universe shared between two workers, a worker process killed mid-task, a broker that is down."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from jobhelpers import run_pipeline
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from forecaster import artifacts, service, storage
from forecaster.providers.synthetic import SyntheticProvider
from forecaster.settings import Settings
from jobs.executors import celery_executor
from jobs.pipeline import RunReport

pytestmark = [pytest.mark.slow, pytest.mark.redis]
STOCKCAST = str(Path(sys.executable).with_name("stockcast"))
BROKER = os.environ.get("STOCKCAST_TEST_BROKER_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def broker() -> Iterator[str]:
    """The test Redis database, emptied before and after."""
    import redis

    client = redis.Redis.from_url(BROKER, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis unreachable at {BROKER}: {exc}")
    client.flushdb()
    yield BROKER
    client.flushdb()
    client.close()


@pytest.fixture
def celery_settings(settings: Settings, broker: str) -> Settings:
    # A queue of its own: workers of another test (or a developer's) never take these tasks.
    return settings.replace(
        executor="celery", broker_url=broker, celery_queue=f"test-{uuid.uuid4().hex[:8]}"
    )


class Workers:
    """`stockcast worker` processes for the test, stopped (and waited for) afterwards."""

    def __init__(self, env: dict[str, str], settings: Settings, tmp: Path) -> None:
        self.env = {
            **os.environ,
            **env,
            "STOCKCAST_EXECUTOR": "celery",
            "STOCKCAST_BROKER_URL": settings.broker_url,
            "STOCKCAST_CELERY_QUEUE": settings.celery_queue,
        }
        self.tmp = tmp
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, **env: str) -> subprocess.Popen[bytes]:
        log = (self.tmp / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            [STOCKCAST, "worker", "--concurrency", "1", "--name", name],
            env={**self.env, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.procs[name] = proc
        return proc

    def start_ready(self, settings: Settings, *names: str) -> None:
        for name in names:
            self.start(name)
        self.wait_ready(settings, len(names))

    def wait_ready(self, settings: Settings, count: int, seconds: float = 90) -> None:
        from jobs.executors.celery import app, configure

        configure(settings)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                assert proc.poll() is None, f"worker {name} exited: {self.log(name)}"
            if len(app.control.ping(timeout=1.0)) >= count:
                return
        raise AssertionError("workers did not answer: " + self.log(next(iter(self.procs))))

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")[-3000:]

    def stop(self, *names: str) -> None:
        procs = [self.procs[n] for n in names] if names else list(self.procs.values())
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def workers(env: dict[str, str], celery_settings: Settings, tmp_path: Path) -> Iterator[Workers]:
    pool = Workers(env, celery_settings, tmp_path)
    yield pool
    pool.stop()


def kill_lock_holder(sessions: sessionmaker[Session], name: str | None = None) -> int:
    """SIGKILL the process holding the lock `name` (any lock: None) once it holds it; its pid.
    The lock row names its owner host:pid:random (SQLite keeps locks in a table)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with sessions() as s:
            lock = (
                s.scalars(select(storage.Lock)).first()
                if name is None
                else s.get(storage.Lock, name)
            )
        if lock is not None:
            pid = int(lock.owner.split(":")[1])
            os.kill(pid, signal.SIGKILL)
            return pid
        time.sleep(0.05)
    raise AssertionError(f"no step took the lock {name or '(any)'}")


def register(sessions: sessionmaker[Session], symbols: list[str]) -> None:
    with sessions.begin() as s:
        for symbol in symbols:  # ~280 days each: enough for the tiny backtest, quick to train
            service.backfill_ticker(s, SyntheticProvider(), symbol, date(2017, 12, 1), None)


def check_each_trained_once(
    sessions: sessionmaker[Session], settings: Settings, report: RunReport, symbols: list[str]
) -> set[str]:
    assert report.status == "succeeded", [(o.ticker, o.error) for o in report.steps]
    with sessions() as s:
        steps = list(
            s.scalars(select(storage.JobStep).where(storage.JobStep.run_id == report.run_id))
        )
        assert sorted(step.ticker for step in steps) == sorted(symbols)  # one step each
        assert all(step.status == "succeeded" for step in steps)
        for symbol in symbols:
            ticker = storage.get_ticker(s, symbol)
            assert ticker is not None
            versions = storage.model_versions(s, ticker.id)
            assert [v.version for v in versions] == [1], symbol  # trained exactly once
            assert storage.latest_prediction(s, ticker.id) is not None
            # the version's artifact is in the database, and no model file anywhere
            assert set(artifacts.sizes(s, ticker.id)) == {v.id for v in versions}, symbol
        assert not list(settings.data_dir.rglob("*.keras"))
        return {step.worker or "" for step in steps}


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)  # the production shape
def test_two_workers_without_a_shared_disk_share_the_universe_and_its_models(
    celery_settings: Settings, sessions: sessionmaker[Session], workers: Workers, tmp_path: Path
) -> None:
    """Two workers, each with its own empty data directory, one PostgreSQL and one Redis: the
    first night shares the tickers (each trained once); the next night (one new day) the other
    worker warm-starts every ticker, those the first trained included, from the database."""
    # series whose backtest keeps the network (a random walk's keeps the highway alone, and a
    # quiet night then refits that instead of fine-tuning a network)
    symbols = [f"SYN-AR30-{n}" for n in range(1, 5)] + ["SYN-GARCH-1", "SYN-GARCH-2"]
    with sessions.begin() as s:
        for symbol in symbols:  # ~280 days each: enough for the tiny backtest, quick to train
            service.backfill_ticker(
                s, SyntheticProvider(), symbol, date(2017, 12, 1), date(2018, 12, 27)
            )
    for name in ("alpha", "beta"):
        workers.start(name, STOCKCAST_DATA_DIR=str(tmp_path / name))
    workers.wait_ready(celery_settings, 2)
    first = run_pipeline(celery_settings, symbols, fetch=False)
    assert check_each_trained_once(sessions, celery_settings, first, symbols) == {"alpha", "beta"}

    workers.stop("alpha")
    with sessions.begin() as s:  # one new trading day
        for symbol in symbols:
            service.backfill_ticker(s, SyntheticProvider(), symbol, None, date(2018, 12, 31))
    quiet = run_pipeline(celery_settings, symbols, fetch=False)
    assert quiet.status == "succeeded", [(o.ticker, o.error) for o in quiet.steps]
    with sessions() as s:
        steps = s.scalars(select(storage.JobStep).where(storage.JobStep.run_id == quiet.run_id))
        assert {step.worker for step in steps} == {"beta"}
        for symbol in symbols:
            ticker = storage.get_ticker(s, symbol)
            assert ticker is not None
            newest = storage.model_versions(s, ticker.id)[0]
            assert (newest.version, newest.trained_through) == (2, date(2018, 12, 31)), symbol
            assert newest.metrics["serving"]["warm_started_from"] == 1, symbol
            assert set(artifacts.sizes(s, ticker.id)) == {
                v.id for v in storage.model_versions(s, ticker.id)
            }
    assert not list(tmp_path.rglob("*.keras"))  # no model file anywhere, on either worker


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_worker_of_another_configuration_refuses_the_step_and_trains_nothing(
    celery_settings: Settings, sessions: sessionmaker[Session], workers: Workers
) -> None:
    """A worker started with STOCKCAST_HIGHWAY=none takes a step of a run configured with "ar":
    it is recorded config_mismatch, nothing is trained, and the run says so in one line."""
    assert celery_settings.model.highway == "ar"
    register(sessions, ["SYN-RW-1"])
    workers.env["STOCKCAST_HIGHWAY"] = "none"
    workers.start_ready(celery_settings, "other")
    report = run_pipeline(celery_settings, ["SYN-RW-1"])
    assert report.status == "failed"
    with sessions() as s:
        (run,) = s.scalars(select(storage.JobRun)).all()
        assert run.error_code == "config_mismatch" and run.error is not None
        assert "\n" not in run.error and "model.highway=none (run: ar)" in run.error
        ((status, code, worker),) = [(st.status, st.error_code, st.worker) for st in run.steps]
        assert (status, code, worker) == ("failed", "config_mismatch", "other")
        ticker = storage.get_ticker(s, "SYN-RW-1")
        assert ticker is not None and storage.model_versions(s, ticker.id) == []
        assert s.scalars(select(storage.Lock)).all() == []


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the lock row names its process
def test_a_worker_process_killed_mid_task_is_redelivered_and_completes_once(
    celery_settings: Settings, sessions: sessionmaker[Session], workers: Workers
) -> None:
    symbols = [f"SYN-RW-{n}" for n in range(1, 5)]
    register(sessions, symbols)
    workers.start_ready(celery_settings, "alpha", "beta")
    result: dict[str, RunReport] = {}
    run = threading.Thread(target=lambda: result.update(r=run_pipeline(celery_settings, symbols)))
    run.start()
    kill_lock_holder(sessions)  # a task holds its ticker's lock
    run.join(300)
    assert not run.is_alive()
    check_each_trained_once(sessions, celery_settings, result["r"], symbols)
    assert all(proc.poll() is None for proc in workers.procs.values())  # the workers live on


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the lock row names its process
def test_the_universe_step_killed_mid_fit_is_delivered_again_and_fits_once(
    celery_settings: Settings, sessions: sessionmaker[Session], workers: Workers
) -> None:
    """Universe scope on Celery: each ticker's step fans out, then the one universe step. Its
    pool process SIGKILLed while it holds the universe lock, the broker delivers the step again,
    the new delivery takes over the dead process's lock, and every ticker is registered and
    forecast once, by one step of the run."""
    settings = celery_settings.replace(
        model_scope="universe",
        ensemble=2,
        backtest_days=120,
        backtest_refit_every=60,
        min_backtest_forecasts=0,
    )
    workers.env.update(  # the run's configuration, or the workers refuse its steps
        STOCKCAST_MODEL_SCOPE="universe",
        STOCKCAST_ENSEMBLE="2",
        STOCKCAST_BACKTEST_DAYS="120",
        STOCKCAST_BACKTEST_REFIT_EVERY="60",
        STOCKCAST_MIN_BACKTEST_FORECASTS="0",
    )
    symbols = ["SYN-AR30-5", "SYN-RW-5", "SYN-GARCH-5"]
    register(sessions, symbols)
    workers.start_ready(settings, "alpha", "beta")
    result: dict[str, RunReport] = {}
    run = threading.Thread(
        target=lambda: result.update(r=run_pipeline(settings, symbols, fetch=False))
    )
    run.start()
    kill_lock_holder(sessions, "universe")
    run.join(300)
    assert not run.is_alive()
    report = result["r"]
    assert report.status == "succeeded", [(o.ticker, o.error) for o in report.steps]
    with sessions() as s:
        steps = s.scalars(select(storage.JobStep).where(storage.JobStep.run_id == report.run_id))
        # each ticker's fetch step, the universe step (once, though delivered twice), then each
        # ticker's forecast step
        assert sorted(step.ticker for step in steps) == sorted([*symbols, *symbols, "universe"])
        for symbol in symbols:
            ticker = storage.get_ticker(s, symbol)
            assert ticker is not None
            versions = storage.model_versions(s, ticker.id)
            assert [(v.version, v.config["scope"]) for v in versions] == [(1, "universe")]
            assert storage.latest_prediction(s, ticker.id) is not None
            assert set(artifacts.sizes(s, ticker.id)) == {versions[0].id}, symbol
        assert s.scalars(select(storage.Lock)).all() == []
    assert all(proc.poll() is None for proc in workers.procs.values())  # the workers live on


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (a Celery worker's pool processes)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid:
                found.append(int(entry.name))
    return found


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the lock row names its process
def test_a_whole_worker_lost_mid_step_is_queued_again_within_the_run(
    celery_settings: Settings,
    sessions: sessionmaker[Session],
    workers: Workers,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every process of one worker SIGKILLed while it runs a step (its machine lost): the run
    sees the worker stop answering and queues the step again for the other worker after
    LOST_AFTER checks (every 10 s in production, every 3 s here), instead of waiting for the
    broker's visibility timeout (hours at the defaults)."""
    checked = functools.partial(celery_executor.CeleryExecutor, liveness_seconds=3.0)
    monkeypatch.setattr(celery_executor, "CeleryExecutor", checked)
    symbols = ["SYN-RW-1", "SYN-RW-2"]
    register(sessions, symbols)
    workers.start_ready(celery_settings, "alpha", "beta")
    alpha = workers.procs["alpha"].pid
    result: dict[str, RunReport] = {}
    run = threading.Thread(target=lambda: result.update(r=run_pipeline(celery_settings, symbols)))
    run.start()
    lost = None
    deadline = time.monotonic() + 120
    while lost is None and time.monotonic() < deadline:  # a step of alpha holds its lock
        with sessions() as s:
            locks = s.scalars(select(storage.Lock)).all()
        for lock in locks:
            if int(lock.owner.split(":")[1]) in children(alpha):
                lost = lock.name.removeprefix("ticker:")
                for pid in [alpha, *children(alpha)]:  # the whole worker, at once
                    os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
    assert lost is not None, "alpha never ran a step"
    killed = time.monotonic()
    run.join(180)
    assert not run.is_alive()
    assert time.monotonic() - killed < 60  # LOST_AFTER checks, then the step again
    check_each_trained_once(sessions, celery_settings, result["r"], symbols)
    with sessions() as s:
        steps = s.scalars(select(storage.JobStep).where(storage.JobStep.ticker == lost)).all()
        assert [step.worker for step in steps] == ["beta"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the lock row names its process
def test_a_poison_ticker_fails_after_three_deliveries_and_the_rest_succeed(
    celery_settings: Settings, sessions: sessionmaker[Session], workers: Workers
) -> None:
    """A step that ends its worker process every time (here: SIGKILL of whichever process holds
    the poison ticker's lock) is delivered 3 times, then failed as `poison` without running;
    the other tickers of the run complete and both workers stay up."""
    symbols = ["SYN-RW-1", "SYN-RW-2", "SYN-RW-3"]
    poison = "SYN-RW-2"
    register(sessions, symbols)
    workers.start_ready(celery_settings, "alpha", "beta")
    result: dict[str, RunReport] = {}
    run = threading.Thread(target=lambda: result.update(r=run_pipeline(celery_settings, symbols)))
    run.start()
    killed: list[int] = []
    deadline = time.monotonic() + 300
    while run.is_alive() and time.monotonic() < deadline:
        with sessions() as s:
            owners = s.scalars(
                select(storage.Lock.owner).where(storage.Lock.name == f"ticker:{poison}")
            ).all()
        for owner in owners:
            pid = int(owner.split(":")[1])  # host:pid:random: the pool process
            if pid not in killed:
                killed.append(pid)
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
    run.join(60)
    assert not run.is_alive()
    steps = {o.ticker: o for o in result["r"].steps}
    assert len(killed) == 3  # deliveries 1-3 ran (and died); the 4th did not run
    assert (steps[poison].status, steps[poison].error_code) == ("failed", "poison")
    assert "delivered 4 times" in (steps[poison].error or "")
    assert all(steps[s].status == "succeeded" for s in symbols if s != poison)
    assert result["r"].status == "partial"
    assert all(proc.poll() is None for proc in workers.procs.values())  # the workers live on
    with sessions() as s:
        ticker = storage.get_ticker(s, poison)
        assert ticker is not None and storage.model_versions(s, ticker.id) == []


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_broker_down_fails_the_run_with_one_line_and_records_it(
    env: dict[str, str], sessions: sessionmaker[Session], settings: Settings
) -> None:
    register(sessions, ["SYN-RW-1"])
    down = {
        **os.environ,
        **env,
        "STOCKCAST_EXECUTOR": "celery",
        "STOCKCAST_BROKER_URL": "redis://:secret@127.0.0.1:1/0",  # nothing listens on port 1
    }
    proc = subprocess.run(
        [STOCKCAST, "run-now", "SYN-RW-1"], env=down, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and "does not answer" in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr and "secret" not in proc.stderr
    with sessions() as s:
        (run,) = s.scalars(select(storage.JobRun)).all()
        assert run.status == "failed" and run.error_code == "broker_unavailable"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_no_worker_answering_fails_the_run_at_once_and_records_it(
    celery_settings: Settings, sessions: sessionmaker[Session]
) -> None:
    from jobs.executors.celery import NoWorkers

    register(sessions, ["SYN-RW-1"])
    with pytest.raises(NoWorkers, match="no Celery worker answers"):
        run_pipeline(celery_settings, ["SYN-RW-1"])
    with sessions() as s:
        (run,) = s.scalars(select(storage.JobRun)).all()
        assert run.status == "failed" and run.error_code == "no_workers"
        assert [step.status for step in run.steps] == []  # nothing was queued


def test_worker_name_is_checked_before_anything_starts(env: dict[str, str]) -> None:
    proc = subprocess.run(
        [STOCKCAST, "worker", "--name", "bad name@host"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "Invalid value for --name" in proc.stderr
    assert "Traceback" not in proc.stderr
