"""Truthful runs under broker faults, with a private `redis-server` this test stops and starts
(the shared one on 6379 is left alone) and real `stockcast worker` processes:
- Redis stopped for 20 s mid-run: the tickers that were trained and forecast are recorded as
  succeeded (the database says what happened when the results are lost);
- Redis stopped until after the run's deadline: `run-now` ends within that deadline plus a few
  seconds, recorded `failed` (`broker_unavailable`), no step left running.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from jobhelpers import run_pipeline
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from test_celery import STOCKCAST, Workers, register

from forecaster import storage
from forecaster.settings import Settings
from jobs.pipeline import RunReport

pytestmark = [pytest.mark.slow, pytest.mark.redis]


class PrivateRedis:
    """A redis-server of the test's own, persisting every write (append-only file), so a stop
    and a start is an outage, not a loss of the queue."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
             str(self.folder), "--appendonly", "yes", "--appendfsync", "always", "--save", ""],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("the private redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        if os.environ.get("CI"):
            raise AssertionError("redis-server is required in CI (apt-get install redis-server)")
        pytest.skip("no redis-server binary")
    server = PrivateRedis(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


def wait_for_a_lock(sessions: sessionmaker[Session], seconds: float = 120) -> None:
    """The barrier: a worker holds a ticker's lock, so a step is in progress."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with sessions() as s:
            if s.scalars(select(storage.Lock)).first() is not None:
                return
        time.sleep(0.05)
    raise AssertionError("no step started")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_redis_stopped_for_20s_mid_run_records_what_was_trained_as_succeeded(
    settings: Settings,
    sessions: sessionmaker[Session],
    env: dict[str, str],
    tmp_path: Path,
    private_redis: PrivateRedis,
) -> None:
    cs = settings.replace(executor="celery", broker_url=private_redis.url, celery_queue="faults")
    symbols = ["SYN-RW-1", "SYN-RW-2"]
    register(sessions, symbols)
    pool = Workers(env, cs, tmp_path)
    try:
        pool.start_ready(cs, "alpha")
        result: dict[str, RunReport] = {}
        run = threading.Thread(target=lambda: result.update(r=run_pipeline(cs, symbols)))
        run.start()
        wait_for_a_lock(sessions)
        private_redis.stop()
        time.sleep(20)  # the outage itself
        private_redis.start()
        run.join(300)
        assert not run.is_alive()
        assert pool.procs["alpha"].poll() is None, pool.log("alpha")  # the worker lived on
    finally:
        pool.stop()
    report = result["r"]
    assert report.status == "succeeded", [(o.ticker, o.status, o.error) for o in report.steps]
    with sessions() as s:
        for symbol in symbols:
            ticker = storage.get_ticker(s, symbol)
            assert ticker is not None and storage.champion(s, ticker.id) is not None
            assert storage.latest_prediction(s, ticker.id) is not None
        steps = s.scalars(select(storage.JobStep)).all()
        assert sorted((st.ticker, st.status) for st in steps) == [
            (symbol, "succeeded") for symbol in symbols
        ]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_redis_down_past_the_deadline_ends_run_now_in_time_as_broker_unavailable(
    sessions: sessionmaker[Session],
    env: dict[str, str],
    settings: Settings,
    tmp_path: Path,
    private_redis: PrivateRedis,
) -> None:
    symbols = ["SYN-RW-1", "SYN-RW-2"]  # one worker process: the second waits in the queue
    register(sessions, symbols)
    step_timeout = 10
    cs = settings.replace(
        executor="celery",
        broker_url=private_redis.url,
        celery_queue="faults",
        step_timeout_seconds=step_timeout,
    )
    pool = Workers(env, cs, tmp_path)
    pool.env["STOCKCAST_STEP_TIMEOUT_SECONDS"] = str(step_timeout)
    try:
        pool.start_ready(cs, "alpha")
        started = time.monotonic()
        proc = subprocess.Popen(
            [STOCKCAST, "run-now", *symbols],
            env={**pool.env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for_a_lock(sessions)
        private_redis.stop()  # and it never comes back
        out, err = proc.communicate(timeout=120)
        elapsed = time.monotonic() - started
    finally:
        pool.stop()
    assert proc.returncode == 1, out + err
    deadline = 3 * step_timeout  # 2 tickers / 1 worker + 1 rounds of the step timeout
    assert elapsed < deadline + 20  # the deadline, the process's start-up, a few seconds
    errors = [line for line in err.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and "stopped answering during the run" in errors[0], err
    assert "Traceback" not in err
    with sessions() as s:
        (run,) = s.scalars(select(storage.JobRun)).all()
        assert run.status == "failed" and run.error_code == "broker_unavailable"
        assert run.finished_at is not None
        lasted = (run.finished_at - run.started_at).total_seconds()
        assert lasted < deadline + 8, lasted
        steps = {st.ticker: st for st in run.steps}
        assert "running" not in {st.status for st in steps.values()}
        waiting = [st for st in steps.values() if st.status == "failed"]
        assert [st.error_code for st in waiting] == ["broker_unavailable"]
