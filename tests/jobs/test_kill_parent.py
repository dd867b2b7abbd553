"""kill -9 of `stockcast run-now` alone (not its process group) while its step's child trains:
the child dies with it within 2 s, an immediate second run-now trains alone and succeeds, and no
champion ever points at a missing artifact."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from forecaster import artifacts, service, storage
from forecaster.providers.sample import SampleProvider
from forecaster.settings import Settings

pytestmark = pytest.mark.slow
STOCKCAST = str(Path(sys.executable).with_name("stockcast"))


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state, ppid, ...
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has stopped; only its parent's wait is missing


def ticker_lock_held(engine: Engine) -> bool:
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            return bool(
                conn.scalar(
                    text(
                        "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
                        " WHERE l.locktype = 'advisory' AND l.granted"
                        " AND d.datname = current_database()"
                    )
                )
            )
        return bool(conn.scalar(select(func.count()).select_from(storage.Lock)))


def wait_for(condition: Callable[[], object], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_killed_run_now_takes_its_training_child_with_it(
    settings: Settings,
    sessions: sessionmaker[Session],
    engine: Engine,
    env: dict[str, str],
) -> None:
    with sessions.begin() as s:
        # A short history (as the pipeline tests use): the second run trains it in seconds.
        service.backfill_ticker(s, SampleProvider(), "GOOG", date(2011, 6, 1), None)
    base = {**os.environ, **env, "STOCKCAST_EXECUTOR": "local"}
    # Long enough training that the kill surely lands mid-training.
    slow = {**base, "STOCKCAST_EPOCHS": "200", "STOCKCAST_PATIENCE": "200"}
    first = subprocess.Popen(
        [STOCKCAST, "run-now", "GOOG", "--force-train"],
        env=slow,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(lambda: children_of(first.pid), 60, "the step's child process")
        wait_for(lambda: ticker_lock_held(engine), 60, "the child to take the ticker lock")
        (child,) = [c for c in children_of(first.pid) if "resource_tracker" not in _cmd(c)]
        # The lock is the child's: the parent holds no ticker lock of its own any more.
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
        killed = time.monotonic()
        wait_for(lambda: not running(child), 2.0, "the orphaned child to die")
        assert time.monotonic() - killed < 2.0
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()

    second = subprocess.run(
        [STOCKCAST, "run-now", "GOOG", "--force-train"],
        env=base,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert second.returncode == 0, second.stdout + second.stderr
    assert "GOOG: succeeded" in second.stdout, second.stdout
    with sessions() as s:
        ticker = storage.get_ticker(s, "GOOG")
        assert ticker is not None
        models = storage.model_versions(s, ticker.id)
        champions = [m for m in models if m.status == "champion"]
        assert len(champions) == 1
        stored = artifacts.sizes(s, ticker.id)
        assert {m.id for m in models} == set(stored)  # every version has its artifact
        runs = s.scalars(select(storage.JobRun).order_by(storage.JobRun.id)).all()
        assert [r.status for r in runs] == ["failed", "succeeded"]
        assert runs[0].error_code == "run_died"
    assert not ticker_lock_held(engine)


def _cmd(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""
