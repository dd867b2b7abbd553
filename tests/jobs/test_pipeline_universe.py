"""Which tickers a pipeline run processes: every tracked one, each from its own provider; a fresh
database is seeded from STOCKCAST_TICKERS. Training is replaced by a stub that refuses (the real
fetch and storage run), so these stay fast."""

from __future__ import annotations

from typing import Any, NoReturn

import pandas as pd
import pytest
from jobhelpers import run_pipeline
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from forecaster import storage, universe
from forecaster.errors import ModelRejected
from forecaster.settings import Settings


@pytest.fixture(autouse=True)
def no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    import forecaster.training

    def refuse(
        prices: pd.DataFrame, settings: Settings, ticker: str = "", **kwargs: Any
    ) -> NoReturn:
        raise ModelRejected(f"{ticker}: training stubbed out ({len(prices)} rows)")

    monkeypatch.setattr(forecaster.training, "train", refuse)


def sources(sessions: sessionmaker[Session]) -> dict[str, set[str]]:
    """Which provider stored each ticker's prices."""
    with sessions() as s:
        rows = s.execute(
            select(storage.Ticker.symbol, storage.Price.source)
            .join(storage.Price, storage.Price.ticker_id == storage.Ticker.id)
            .distinct()
        ).all()
    out: dict[str, set[str]] = {}
    for symbol, source in rows:
        out.setdefault(symbol, set()).add(source)
    return out


def test_a_run_processes_every_tracked_ticker_with_its_provider(
    pipeline_settings: Settings, engine: Engine, sessions: sessionmaker[Session]
) -> None:
    settings = pipeline_settings.replace(tickers=("GOOG",))
    first = run_pipeline(settings, engine=engine)  # fresh database: seeded with GOOG
    assert [o.ticker for o in first.steps] == ["GOOG"]
    assert "training stubbed out (2148 rows)" in (first.steps[0].error or "")

    with sessions.begin() as s:
        universe.track_ticker(s, "SYN-RW-1", "synthetic", None)  # fetched by the run
        universe.track_ticker(s, "^GSPC", "sample", None)
        universe.track_ticker(s, "SYN-RW-2", "synthetic", None)
        universe.untrack(s, ["GOOG", "SYN-RW-2"])
    second = run_pipeline(settings, engine=engine)
    assert [o.ticker for o in second.steps] == ["SYN-RW-1", "^GSPC"]  # registration order
    assert all("training stubbed out" in (o.error or "") for o in second.steps)
    assert sources(sessions) == {"GOOG": {"sample"}, "SYN-RW-1": {"synthetic"}, "^GSPC": {"sample"}}
    with sessions() as s:
        run = s.get(storage.JobRun, second.run_id)
        assert run is not None and run.tickers == ["SYN-RW-1", "^GSPC"]

    explicit = run_pipeline(settings, ["GOOG"], engine=engine)  # an explicit list still works
    assert [o.ticker for o in explicit.steps] == ["GOOG"]


def test_nothing_tracked_is_an_empty_run(
    pipeline_settings: Settings, engine: Engine, sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as s:
        universe.track_ticker(s, "GOOG", "sample", None)
        universe.untrack(s, ["GOOG"])
    report = run_pipeline(pipeline_settings, engine=engine)  # not fresh: no seeding
    assert report.steps == [] and report.status == "succeeded"
