"""Real processes against one database: a run killed between training and promotion leaves a
consistent state that the next run repairs; two runs started together never train a ticker
twice and never duplicate a row."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from jobhelpers import ShortSample, factory_of, run_pipeline
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from forecaster import artifacts, service, storage
from forecaster.settings import Settings

pytestmark = pytest.mark.slow
WORKER = Path(__file__).with_name("pipeline_worker.py")
ROOT = Path(__file__).resolve().parents[2]


def worker(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), *args],
        env={
            **os.environ,
            **env,
            "STOCKCAST_EXECUTOR": "inline",
            "PYTHONPATH": str(ROOT),
        },
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_until_ready(procs: list[subprocess.Popen[str]], timeout: float) -> list[str]:
    """Read each worker's output up to its `ready` line, all within `timeout` seconds; return
    what each printed before it."""
    early = [""] * len(procs)
    ready = [threading.Event() for _ in procs]

    def read(i: int, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip() == "ready":
                ready[i].set()
                return
            early[i] += line

    readers = [threading.Thread(target=read, args=(i, p), daemon=True) for i, p in enumerate(procs)]
    for reader in readers:
        reader.start()
    deadline = time.monotonic() + timeout
    for i, reader in enumerate(readers):
        reader.join(max(0.0, deadline - time.monotonic()))
        if not ready[i].is_set():
            raise AssertionError(f"worker {i} did not reach the barrier:\n{early[i]}")
    return early


def versions(sessions: sessionmaker[Session], symbol: str) -> list[tuple[int, str]]:
    with sessions() as s:
        ticker = storage.get_ticker(s, symbol)
        assert ticker is not None
        return [(v.version, v.status) for v in storage.model_versions(s, ticker.id)]


def stored_artifacts(sessions: sessionmaker[Session]) -> int:
    with sessions() as s:
        return int(s.scalar(select(func.count()).select_from(storage.ModelArtifact)) or 0)


def test_killed_between_training_and_promotion(
    pipeline_settings: Settings, sessions: sessionmaker[Session], env: dict[str, str]
) -> None:
    settings = pipeline_settings
    first = run_pipeline(settings, ["GOOG"], provider_factory=factory_of(ShortSample()))
    assert first.status == "succeeded" and versions(sessions, "GOOG") == [(1, "champion")]
    with sessions() as s:
        before = storage.latest_prediction(s, service.require_ticker(s, "GOOG").id)
        assert before is not None

    proc = worker(env, "GOOG", "--force-train", "--die-before-promotion", "--short")
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 137, out

    # The dead run: its record still says running; its version and artifact were never committed.
    assert versions(sessions, "GOOG") == [(1, "champion")]
    assert stored_artifacts(sessions) == 1
    with sessions() as s:
        dead = s.scalars(select(storage.JobRun).order_by(storage.JobRun.id.desc())).first()
        assert dead is not None and dead.status == "running"
    # The previous champion still loads (in a fresh cache, as a new API worker would) and predicts.
    artifacts.clear_cache()
    with sessions.begin() as s:
        again = service.predict_ticker(s, settings, "GOOG")
        assert again.predicted_close == pytest.approx(before.predicted_close)

    # The next run: marks the dead run failed, takes the lock the dead process never released,
    # and trains the version the dead run could not commit.
    report = run_pipeline(
        settings, ["GOOG"], force_train=True, provider_factory=factory_of(ShortSample())
    )
    assert report.status == "succeeded"
    assert report.reaped == [dead.id]
    assert versions(sessions, "GOOG") == [(2, "champion"), (1, "retired")]
    assert stored_artifacts(sessions) == 2
    with sessions() as s:
        assert s.get_one(storage.JobRun, dead.id).status == "failed"


def test_two_runs_started_together_train_each_ticker_once(
    pipeline_settings: Settings, sessions: sessionmaker[Session], env: dict[str, str]
) -> None:
    procs = [
        worker(env, "^GSPC", "GOOG", "--wait-for-go", "--slow-train", "2", "--short")
        for _ in range(2)
    ]
    try:
        # A barrier: both processes import everything first, then both go.
        early = wait_until_ready(procs, timeout=180)
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        outputs = [e + p.communicate(timeout=300)[0] for e, p in zip(early, procs, strict=True)]
    finally:
        for p in procs:  # never leave one running against the shared database
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0, 0], outputs

    with sessions() as s:
        # exactly one model version per ticker: nobody trained a ticker twice
        per_ticker = dict(
            s.execute(
                select(storage.Ticker.symbol, func.count(storage.ModelVersion.id))
                .join(storage.ModelVersion, storage.ModelVersion.ticker_id == storage.Ticker.id)
                .group_by(storage.Ticker.symbol)
            ).all()
        )
        assert per_ticker == {"^GSPC": 1, "GOOG": 1}
        trained_steps = s.scalars(
            select(storage.JobStep.ticker).where(storage.JobStep.model_version_id.is_not(None))
        ).all()
        assert sorted(trained_steps) == ["GOOG", "^GSPC"]
        # the runs really overlapped: at least one step found its ticker locked by the other run
        details = s.scalars(select(storage.JobStep.detail)).all()
        assert any("another run holds this ticker" in (d or "") for d in details), details
        # no duplicate rows: exactly the sample's days, one forecast per ticker
        for symbol in ("^GSPC", "GOOG"):
            ticker = storage.get_ticker(s, symbol)
            assert ticker is not None
            n_prices = s.scalar(
                select(func.count())
                .select_from(storage.Price)
                .where(storage.Price.ticker_id == ticker.id)
            )
            assert n_prices == len(ShortSample().fetch(symbol, None, None))
            n_forecasts = s.scalar(
                select(func.count())
                .select_from(storage.Prediction)
                .where(storage.Prediction.ticker_id == ticker.id)
            )
            assert n_forecasts == 1
        assert s.scalar(select(func.count()).select_from(storage.JobRun)) == 2
        assert (
            s.scalar(
                select(func.count())
                .select_from(storage.JobRun)
                .where(storage.JobRun.status == "running")
            )
            == 0
        )
