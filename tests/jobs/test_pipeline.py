"""The pipeline on SQLite and PostgreSQL: fetch -> train -> promote -> predict, run records,
failure isolation between tickers, incremental pick-up, stale runs, busy locks, child processes."""

from __future__ import annotations

import re
import socket
import subprocess
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from jobhelpers import LAST_DAY, ShortSample, factory_of, run_pipeline
from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session, sessionmaker

from api import create_app
from cli.main import cli
from forecaster import locks, storage
from forecaster.errors import ProviderError
from forecaster.settings import Settings

pytestmark = pytest.mark.slow


def count(sessions: sessionmaker[Session], model: type, **where: object) -> int:
    with sessions() as s:
        query = select(func.count()).select_from(model)
        for key, value in where.items():
            query = query.where(getattr(model, key) == value)
        return s.scalar(query) or 0


def champions(sessions: sessionmaker[Session]) -> dict[str, int]:
    with sessions() as s:
        rows = s.execute(
            select(storage.Ticker.symbol, storage.ModelVersion.version)
            .join(storage.ModelVersion, storage.ModelVersion.ticker_id == storage.Ticker.id)
            .where(storage.ModelVersion.status == "champion")
        ).all()
    return {symbol: version for symbol, version in rows}


def steps(sessions: sessionmaker[Session], run_id: int) -> dict[str, storage.JobStep]:
    with sessions() as s:
        rows = s.scalars(select(storage.JobStep).where(storage.JobStep.run_id == run_id)).all()
    return {r.ticker: r for r in rows}


def test_full_run_then_rerun_is_idempotent(
    pipeline_settings: Settings, engine: Engine, sessions: sessionmaker[Session]
) -> None:
    provider = ShortSample()
    report = run_pipeline(
        pipeline_settings, provider_factory=factory_of(provider), engine=engine, trigger="cli"
    )
    assert report.status == "succeeded", report.steps
    assert champions(sessions) == {"^GSPC": 1, "GOOG": 1}
    with sessions() as s:
        for symbol in ("^GSPC", "GOOG"):
            ticker = storage.get_ticker(s, symbol)
            assert ticker is not None
            p = storage.latest_prediction(s, ticker.id)
            assert p is not None and p.as_of_date == LAST_DAY[symbol]
    first = steps(sessions, report.run_id)
    assert first["GOOG"].status == "succeeded"
    assert first["GOOG"].rows_fetched == first["GOOG"].rows_inserted > 400
    assert first["GOOG"].model_version_id is not None and first["GOOG"].promoted
    assert "trained v1" in (first["GOOG"].detail or "")
    assert "forecast 2013-03-04" in (first["GOOG"].detail or "")
    with sessions() as s:
        run = s.get(storage.JobRun, report.run_id)
        assert run is not None and run.finished_at is not None and run.heartbeat_at is not None
        assert run.tickers == ["^GSPC", "GOOG"] and run.trigger == "cli"

    prices_before = count(sessions, storage.Price)
    again = run_pipeline(pipeline_settings, provider_factory=factory_of(provider), engine=engine)
    assert again.status == "succeeded"
    second = steps(sessions, again.run_id)
    assert second["GOOG"].rows_inserted == 0 and second["GOOG"].model_version_id is None
    assert "retraining skipped" in (second["GOOG"].detail or "")
    # nothing duplicated: same prices, same model versions, one forecast per ticker and day
    assert count(sessions, storage.Price) == prices_before
    assert count(sessions, storage.ModelVersion) == 2
    assert count(sessions, storage.Prediction) == 2
    # the second run fetched only the newest stored days again (the revision check's overlap)
    # and after them
    with sessions() as s:
        goog = storage.get_ticker(s, "GOOG")
        assert goog is not None
        overlap = storage.load_prices(s, goog.id, limit=10).index[0].date()
    assert provider.calls[-1][:2] == ("GOOG", overlap)
    assert overlap < LAST_DAY["GOOG"] + timedelta(days=1)

    # visible through the API and the CLI
    client = create_app(pipeline_settings, engine).test_client()
    body = client.get("/v1/runs").get_json()
    assert body["total"] == 2
    newest = body["runs"][0]
    assert newest["status"] == "succeeded" and newest["kind"] == "pipeline"
    assert {s["ticker"] for s in newest["steps"]} == {"^GSPC", "GOOG"}
    assert all("retraining skipped" in s["detail"] for s in newest["steps"])


def test_incremental_fetch_retrains_on_new_days(
    pipeline_settings: Settings, engine: Engine, sessions: sessionmaker[Session]
) -> None:
    until = {"GOOG": date(2013, 1, 31)}
    run_pipeline(
        pipeline_settings, ["GOOG"], provider_factory=factory_of(ShortSample(until)), engine=engine
    )
    lookups: list[str] = []

    def by_symbol(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if re.search(r"FROM tickers\s+WHERE tickers\.symbol =", statement):
            lookups.append(statement)

    event.listen(engine, "before_cursor_execute", by_symbol)
    try:
        report = run_pipeline(
            pipeline_settings, ["GOOG"], provider_factory=factory_of(ShortSample()), engine=engine
        )
    finally:
        event.remove(engine, "before_cursor_execute", by_symbol)
    # The fetch stage finds the row twice (its provider, then the backfill, which may create
    # it); the rest of the step resolves it once and passes it on: checking, training data,
    # registering and forecasting.
    assert len(lookups) == 3, lookups
    step = steps(sessions, report.run_id)["GOOG"]
    assert step.status == "succeeded"
    assert step.rows_inserted == 20  # the trading days of February 2013 plus March 1st
    assert step.model_version_id is not None and "trained v2" in (step.detail or "")
    with sessions() as s:
        ticker = storage.get_ticker(s, "GOOG")
        assert ticker is not None
        p = storage.latest_prediction(s, ticker.id)
        assert p is not None and p.as_of_date == date(2013, 3, 1)


class Failing(ShortSample):
    def __init__(self, broken: str, error: Exception) -> None:
        super().__init__()
        self.broken = broken
        self.error = error

    def fetch(self, ticker: str, start: date | None, end: date | None) -> pd.DataFrame:
        if ticker == self.broken:
            raise self.error
        return super().fetch(ticker, start, end)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # provider errors, not storage
def test_provider_failure_of_one_ticker_does_not_stop_the_others(
    pipeline_settings: Settings, engine: Engine, sessions: sessionmaker[Session], env: dict
) -> None:
    provider = Failing("^GSPC", ProviderError("yfinance rate limit persisted after 5 retries"))
    report = run_pipeline(pipeline_settings, provider_factory=factory_of(provider), engine=engine)
    assert report.status == "partial"
    by_ticker = steps(sessions, report.run_id)
    assert by_ticker["^GSPC"].status == "failed"
    assert by_ticker["^GSPC"].error == "yfinance rate limit persisted after 5 retries"
    assert by_ticker["GOOG"].status == "succeeded"
    assert champions(sessions) == {"GOOG": 1}

    result = CliRunner().invoke(cli, ["runs", "list"])
    assert result.exit_code == 0, result.output
    assert f"run {report.run_id}" in result.stdout and "partial" in result.stdout
    assert "error: yfinance rate limit persisted" in result.stdout


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # validation, not storage
def test_bad_rows_are_rejected_and_the_rest_is_used(
    pipeline_settings: Settings, engine: Engine, sessions: sessionmaker[Session]
) -> None:
    class WithBadRow(ShortSample):
        def fetch(self, ticker: str, start: date | None, end: date | None) -> pd.DataFrame:
            frame = super().fetch(ticker, start, end)
            frame.iloc[100, frame.columns.get_loc("close")] = np.nan
            frame.iloc[101, frame.columns.get_loc("high")] = 1.0  # high < low
            return frame

    report = run_pipeline(
        pipeline_settings, ["GOOG"], provider_factory=factory_of(WithBadRow()), engine=engine
    )
    step = steps(sessions, report.run_id)["GOOG"]
    assert step.status == "succeeded" and step.rows_rejected == 2
    assert "2 rejected" in (step.detail or "")
    assert step.rows_fetched is not None
    assert count(sessions, storage.Price) == step.rows_fetched - 2


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # training, not storage
def test_training_crash_is_recorded_and_the_run_goes_on(
    pipeline_settings: Settings,
    engine: Engine,
    sessions: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import forecaster.training

    real_train = forecaster.training.train

    def flaky(
        prices: pd.DataFrame, settings: Settings, ticker: str = "", **kwargs: Any
    ) -> forecaster.training.TrainingOutcome:
        if ticker == "^GSPC":
            raise FloatingPointError("loss became NaN")
        return real_train(prices, settings, ticker, **kwargs)

    monkeypatch.setattr(forecaster.training, "train", flaky)
    report = run_pipeline(
        pipeline_settings, provider_factory=factory_of(ShortSample()), engine=engine
    )
    by_ticker = steps(sessions, report.run_id)
    assert by_ticker["^GSPC"].status == "failed"
    assert by_ticker["^GSPC"].error == "FloatingPointError: loss became NaN"
    assert by_ticker["GOOG"].status == "succeeded"
    assert count(sessions, storage.Price) > 0  # ^GSPC's prices were stored before training failed


def test_ticker_held_by_another_run_is_skipped(
    pipeline_settings: Settings, engine: Engine, sessions: sessionmaker[Session]
) -> None:
    other = storage.make_engine(engine.url.render_as_string(hide_password=False))
    try:
        with locks.hold(other, locks.ticker_lock_name("^GSPC")):
            report = run_pipeline(
                pipeline_settings, provider_factory=factory_of(ShortSample()), engine=engine
            )
    finally:
        other.dispose()
    by_ticker = steps(sessions, report.run_id)
    assert by_ticker["^GSPC"].status == "skipped"
    detail = by_ticker["^GSPC"].detail or ""
    assert "another run holds this ticker" in detail and socket.gethostname() not in detail
    assert by_ticker["GOOG"].status == "succeeded"
    assert report.status == "succeeded"
    assert count(sessions, storage.Price) == by_ticker["GOOG"].rows_inserted  # ^GSPC untouched


def test_runs_left_running_by_dead_processes_are_marked_failed(
    pipeline_settings: Settings, engine: Engine, sessions: sessionmaker[Session]
) -> None:
    proc = subprocess.Popen(["true"])
    proc.wait()
    long_ago = storage.utcnow() - timedelta(hours=3)
    with sessions.begin() as s:
        dead_here = storage.JobRun(
            kind="pipeline", trigger="scheduler", status="running", host=socket.gethostname(),
            pid=proc.pid, tickers=["GOOG"], heartbeat_at=storage.utcnow(),
        )  # fmt: skip
        silent_elsewhere = storage.JobRun(
            kind="pipeline", trigger="scheduler", status="running", host="other-host", pid=1,
            tickers=["GOOG"], started_at=long_ago, heartbeat_at=long_ago,
        )  # fmt: skip
        alive_elsewhere = storage.JobRun(
            kind="pipeline", trigger="scheduler", status="running", host="other-host", pid=2,
            tickers=["GOOG"], heartbeat_at=storage.utcnow(),
        )  # fmt: skip
        s.add_all([dead_here, silent_elsewhere, alive_elsewhere])
        s.flush()
        s.add(storage.JobStep(run_id=dead_here.id, ticker="GOOG", status="running"))
        ids = (dead_here.id, silent_elsewhere.id, alive_elsewhere.id)
    reaped = storage.reap_stale_runs(sessions, pipeline_settings.run_stale_seconds)
    assert sorted(reaped) == sorted(ids[:2])
    with sessions() as s:
        run = s.get(storage.JobRun, ids[0])
        assert run is not None and run.status == "failed" and "died mid-run" in (run.error or "")
        assert [st.status for st in run.steps] == ["failed"]
        assert "no heartbeat since" in (s.get_one(storage.JobRun, ids[1]).error or "")
        assert s.get_one(storage.JobRun, ids[2]).status == "running"


def test_unmigrated_database_is_a_clear_error(tmp_path: Path, pipeline_settings: Settings) -> None:
    from forecaster.errors import ConfigError

    bare = pipeline_settings.replace(database_url=f"sqlite:///{tmp_path}/empty.db")
    with pytest.raises(ConfigError, match="run `stockcast db upgrade`"):
        run_pipeline(bare, ["GOOG"], provider_factory=factory_of(ShortSample()))


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_child_process_isolation_and_timeout(
    pipeline_settings: Settings, sessions: sessionmaker[Session], env: dict
) -> None:
    """The production mode: each ticker in a spawned child (real sample provider, full GOOG
    history). A child past the step timeout is killed and recorded; nothing half-written."""
    isolated = pipeline_settings.replace(executor="local")
    report = run_pipeline(isolated, ["GOOG"])
    step = steps(sessions, report.run_id)["GOOG"]
    assert report.status == "succeeded", step.error
    assert step.rows_inserted == 2148 and step.promoted  # GOOG 2004-08-19 .. 2013-03-01
    assert champions(sessions) == {"GOOG": 1}

    # a forced retrain that cannot finish in 1 s: killed, recorded, previous state intact
    slow = isolated.replace(step_timeout_seconds=1)
    report = run_pipeline(slow, ["GOOG"], force_train=True)
    step = steps(sessions, report.run_id)["GOOG"]
    assert report.status == "failed"
    assert step.status == "failed" and "timed out after 1s" in (step.error or "")
    assert champions(sessions) == {"GOOG": 1}
    assert count(sessions, storage.ModelVersion) == 1


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_cli_run_now_and_backfill_retrain(
    env: dict, monkeypatch: pytest.MonkeyPatch, sessions: sessionmaker[Session]
) -> None:
    monkeypatch.setenv("STOCKCAST_EXECUTOR", "inline")
    runner = CliRunner()
    result = runner.invoke(cli, ["backfill", "GOOG", "--start", "2011-06-01", "--retrain"])
    assert result.exit_code == 0, result.output
    assert "GOOG: succeeded" in result.stdout and "trained v1" in result.stdout
    assert "retrain" in runner.invoke(cli, ["runs", "list"]).stdout

    result = runner.invoke(cli, ["run-now", "GOOG"])
    assert result.exit_code == 0, result.output
    assert "[1/1] GOOG: working" in result.stderr
    assert "retraining skipped" in result.stdout and "forecast 2013-03-04" in result.stdout

    result = runner.invoke(cli, ["run-now", "GOOG", "NOPE"])  # the sample provider has no NOPE
    assert result.exit_code == 1
    assert "NOPE: failed; error: unknown ticker 'NOPE'" in result.stdout
    assert "GOOG: succeeded" in result.stdout
    assert "partial; see `stockcast runs list`" in result.stderr


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # row locks: the case to clean up
def test_sigterm_to_run_now_records_interrupted_and_leaves_no_lock(
    env: dict, sessions: sessionmaker[Session]
) -> None:
    """`kill` of a foreground `stockcast run-now` while a pool worker holds the ticker's lock:
    the run ends `interrupted` like Ctrl-C, no step stays running and no lock row is left."""
    import os
    import signal
    import sys
    import time

    runner = CliRunner()
    result = runner.invoke(cli, ["backfill", "GOOG", "--start", "2011-06-01"])
    assert result.exit_code == 0, result.output
    stockcast = str(Path(sys.executable).parent / "stockcast")
    slow = {**os.environ, "STOCKCAST_EPOCHS": "2000", "STOCKCAST_PATIENCE": "2000"}
    proc = subprocess.Popen(
        [stockcast, "run-now", "GOOG", "--workers", "1", "--force-train"],
        env=slow,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120  # the barrier: the worker holds GOOG's lock
        while count(sessions, storage.Lock) == 0 and proc.poll() is None:
            assert time.monotonic() < deadline, "the step never took its lock"
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0 and "Traceback" not in output, output
    with sessions() as s:
        run = s.scalars(select(storage.JobRun).order_by(storage.JobRun.id.desc())).first()
        assert run is not None and run.status == "failed" and run.error_code == "interrupted"
        assert run.finished_at is not None
        step = s.scalars(select(storage.JobStep).where(storage.JobStep.run_id == run.id)).one()
        assert step.status == "failed" and step.error_code == "interrupted"
    assert count(sessions, storage.Lock) == 0
    assert champions(sessions) == {}  # nothing half-trained was promoted


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the stop event, not storage
def test_interrupted_run_is_recorded_as_such(
    pipeline_settings: Settings, engine: Engine, sessions: sessionmaker[Session]
) -> None:
    """SIGTERM to the scheduler sets `stop`: the tickers not reached are skipped, and the run
    says it was interrupted instead of claiming success."""
    import threading

    stop = threading.Event()

    def progress(symbol: str, outcome: object) -> None:
        if outcome is not None:
            stop.set()  # shut down once the first ticker is done

    report = run_pipeline(
        pipeline_settings,
        provider_factory=factory_of(ShortSample()),
        engine=engine,
        stop=stop,
        progress=progress,
    )
    assert report.status == "partial"
    assert [o.status for o in report.steps] == ["succeeded", "skipped"]
    with sessions() as s:
        run = s.get(storage.JobRun, report.run_id)
        assert run is not None and run.status == "partial" and run.error == "interrupted"
