"""The step task and run_step (jobs.executors.base): a task carries the run's configuration, and a
worker whose own settings differ refuses it before reading or writing anything."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date

import pytest
from jobhelpers import run_pipeline
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from forecaster import service, storage
from forecaster.params import ModelParams
from forecaster.providers.synthetic import SyntheticProvider
from forecaster.refresh import RefreshOptions, StepOutcome
from forecaster.settings import Settings
from forecaster.training import config_hash, run_config
from jobs.executors import InlineExecutor, StepTask, run_step
from jobs.executors.base import config_mismatch, refused


def test_a_task_survives_json_whole(settings: Settings) -> None:
    options = RefreshOptions(fetch=False, force_train=True, today=date(2019, 1, 2))
    task = StepTask.for_ticker("SYN-RW-1", options, settings)
    back = StepTask.from_json(json.loads(json.dumps(task.to_json())))
    assert back == task
    assert back.config_hash == config_hash(run_config(settings))
    assert config_mismatch(back, settings) is None


def test_the_configuration_names_what_decides_the_model(settings: Settings) -> None:
    config = run_config(settings)
    assert config["model"]["highway"] == settings.model.highway
    assert config["model"]["units"] == list(settings.model.units)
    assert {"window", "features", "backtest_days", "code_version"} <= set(config)
    # what does not change the model is not part of it: a worker may have its own
    assert "database_url" not in config and "workers" not in config
    other = settings.replace(workers=7, log_level="DEBUG", broker_url="redis://elsewhere:1/0")
    assert config_hash(run_config(other)) == config_hash(config)


def test_another_highway_or_epochs_is_refused_in_one_line(settings: Settings) -> None:
    task = StepTask.for_ticker("SYN-RW-1", RefreshOptions(), settings)
    worker = settings.replace(model=settings.model.replace(highway="none", epochs=9))
    reason = config_mismatch(task, worker)
    assert reason is not None and "\n" not in reason
    assert "model.highway=none (run: ar)" in reason
    assert f"model.epochs=9 (run: {settings.model.epochs})" in reason


def test_a_tampered_configuration_is_refused(settings: Settings) -> None:
    task = StepTask.for_ticker("SYN-RW-1", RefreshOptions(), settings)
    tampered = replace(task, config={**task.config, "window": 30})
    reason = config_mismatch(tampered, settings.replace(window=30))
    assert reason is not None and "hash" in reason


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_run_step_refuses_before_reading_or_writing(
    settings: Settings, engine: Engine, sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as s:
        service.backfill_ticker(s, SyntheticProvider(), "SYN-RW-1", date(2017, 12, 1), None)
    task = StepTask.for_ticker("SYN-RW-1", RefreshOptions(fetch=False), settings)
    worker = settings.replace(model=ModelParams(highway="none"))
    result = run_step(task, worker, engine=engine, worker="w1")
    outcome = result.outcome
    assert (outcome.status, outcome.error_code, outcome.worker) == (
        "failed",
        "config_mismatch",
        "w1",
    )
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(storage.ModelVersion)) == 0
        assert s.scalar(select(func.count()).select_from(storage.Lock)) == 0


def test_a_kind_no_worker_knows_is_refused(settings: Settings, engine: Engine) -> None:
    task = replace(StepTask.for_ticker("SYN-RW-1", RefreshOptions(), settings), kind="unheard-of")
    outcome = run_step(task, settings, engine=engine, worker="w1").outcome
    assert (outcome.status, outcome.error_code) == ("failed", "config_mismatch")
    assert outcome.error == "unknown step kind 'unheard-of'"


def test_the_run_line_counts_the_refused_steps() -> None:
    ok = StepOutcome("A")
    bad = StepOutcome(
        "B", status="failed", error="the worker's ... refused", error_code="config_mismatch"
    )
    assert refused([ok]) is None
    assert refused([ok, bad, bad]) == "2 steps refused (B: the worker's ... refused)"


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_inline_worker_of_another_configuration_records_config_mismatch(
    settings: Settings,
    engine: Engine,
    sessions: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The run builds its tasks from its settings; the executor's worker has its own."""
    from jobs import pipeline

    with sessions.begin() as s:
        service.backfill_ticker(s, SyntheticProvider(), "SYN-RW-1", date(2017, 12, 1), None)
    worker = settings.replace(model=settings.model.replace(highway="none"))

    def make(run_settings: Settings, engine: Engine, **_: object) -> InlineExecutor:
        return InlineExecutor(worker, engine)

    monkeypatch.setattr(pipeline, "make_executor", make)
    report = run_pipeline(settings.replace(executor="inline"), ["SYN-RW-1"], fetch=False)
    assert report.status == "failed"
    with sessions() as s:
        (run,) = s.scalars(select(storage.JobRun)).all()
        assert run.error_code == "config_mismatch"
        assert run.error == (
            "1 step refused (SYN-RW-1: the worker's configuration differs from the run's: "
            "model.highway=none (run: ar); refused)"
        )
        assert [(st.status, st.error_code) for st in run.steps] == [("failed", "config_mismatch")]
        assert s.scalar(select(func.count()).select_from(storage.ModelVersion)) == 0
