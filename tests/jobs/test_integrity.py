"""Splits and revised history never reach a forecast (issue: data integrity).

A 1:10 split arrives on a quiet night for a ticker the network serves:
- from a provider that rewrites history after it (as Yahoo does), the overlap read notices the
  revision, the whole history is fetched again and swapped, a full backtest runs, and the
  forecast is a normal one-day move;
- from a provider that does not revise (a csv file), the ticker becomes suspect: persistence
  serves with a reason naming the day, the dashboard shows it, and `tickers resolve` clears it.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner
from jobhelpers import run_pipeline
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from api import create_app
from cli.main import cli
from forecaster import storage
from forecaster.providers.synthetic import SyntheticProvider
from forecaster.settings import Settings

pytestmark = pytest.mark.slow

SPLIT_DAY = date(2018, 12, 3)  # a Monday
NIGHT_BEFORE = date(2018, 11, 30)
FIRST = date(2016, 1, 1)
REVISED, KEPT = "SYN-AR50-7", "SYN-AR50-1"  # AR(0.5): the tiny test network serves both


class SplittingProvider:
    """Synthetic AR(0.5) bars with a 1:10 split on SPLIT_DAY once `split` is set. `revises`:
    earlier bars come back divided by 10 (Yahoo's split-adjusted history) and the split is
    reported as an action; otherwise stored history is never touched (a csv file)."""

    adjusted = False

    def __init__(self, revises: bool) -> None:
        self.revises = revises
        self.name = "synthetic"
        self.split = False

    def fetch(self, ticker: str, start: date | None, end: date | None) -> pd.DataFrame:
        frame = SyntheticProvider().fetch(ticker, max(start or FIRST, FIRST), end)
        if not self.split:
            return frame.loc[frame.index < pd.Timestamp(SPLIT_DAY)]
        frame = frame.copy()
        after = frame.index >= pd.Timestamp(SPLIT_DAY)  # (volume left alone: not compared)
        prices = ["open", "high", "low", "close", "adj_close"]
        scale = pd.Series(1.0, index=frame.index)
        scale[after] = 0.1  # a share is a tenth of what it was
        if self.revises:
            scale[~after] = 0.1  # and every earlier bar as the provider now reports it
            frame.attrs["actions"] = pd.DataFrame(
                {"kind": ["split"], "value": [10.0]},
                index=pd.DatetimeIndex([pd.Timestamp(SPLIT_DAY)], name="date"),
            ).loc[lambda a: a.index >= frame.index[0]]
        for column in prices:
            frame[column] = frame[column] * scale
        return frame


@pytest.fixture
def serving_settings(pipeline_settings: Settings) -> Settings:
    """Two folds of 120 forecasts and a 200-forecast evidence bar, so that a tiny network can
    serve an AR(0.5) series in a test."""
    return pipeline_settings.replace(
        tickers=(REVISED, KEPT),
        default_provider="synthetic",
        backtest_days=240,
        backtest_refit_every=120,
        min_backtest_forecasts=200,
    )


def night(settings: Settings, providers: dict[str, Any], today: date, engine: Engine) -> Any:
    return run_pipeline(
        settings,
        [REVISED, KEPT],
        provider_factory=lambda symbol, _stored: providers[symbol],
        today=today,
        engine=engine,
    )


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_split_on_a_quiet_night_never_reaches_a_forecast(
    serving_settings: Settings,
    engine: Engine,
    sessions: sessionmaker[Session],
    env: dict[str, str],
) -> None:
    providers = {REVISED: SplittingProvider(revises=True), KEPT: SplittingProvider(revises=False)}
    first = night(serving_settings, providers, NIGHT_BEFORE, engine)
    assert first.status == "succeeded", first.steps
    with sessions() as s:
        methods = {
            sym: storage.latest_prediction(s, storage.get_ticker(s, sym).id).method  # type: ignore[union-attr]
            for sym in (REVISED, KEPT)
        }
    assert methods == {REVISED: "lstm", KEPT: "lstm"}  # the network serves both before the split

    for provider in providers.values():
        provider.split = True
    second = night(serving_settings, providers, SPLIT_DAY, engine)
    assert second.status == "succeeded", second.steps
    notes = {o.ticker: o.detail or "" for o in second.steps}

    # the revising provider: history fetched whole and swapped, full backtest, a normal forecast
    # the first day the overlap read again (the 10 newest stored days) is the first changed one
    assert "history_revised: synthetic changed stored prices from 2018-11-" in notes[REVISED]
    assert "1 corporate action(s) recorded" in notes[REVISED]
    assert "2-fold rolling-origin backtest" in notes[REVISED]  # not a quiet night's reuse
    with sessions() as s:
        revised = storage.get_ticker(s, REVISED)
        kept = storage.get_ticker(s, KEPT)
        assert revised is not None and kept is not None and revised.suspect_day is None
        stored = storage.load_prices(s, revised.id)
        moves = stored["close"].pct_change().abs()
        assert moves.max() < 0.2  # no step left from the split in the stored history
        p = storage.latest_prediction(s, revised.id)
        assert p is not None and p.as_of_date == SPLIT_DAY
        assert abs(p.predicted_close / p.last_close - 1) < 0.2
        assert p.lower <= p.last_close * 1.2 and p.upper >= p.last_close * 0.8
        actions = storage.actions_of(s, revised.id)
        assert [(a.date, a.kind, a.value) for a in actions] == [(SPLIT_DAY, "split", 10.0)]

        # the provider that does not revise: suspect, persistence serves, nothing trained
        assert kept.suspect_day == SPLIT_DAY and "-90%" in (kept.suspect_note or "")
        q = storage.latest_prediction(s, kept.id)
        assert q is not None and q.as_of_date == SPLIT_DAY and q.method == "persistence"
        assert q.predicted_close == pytest.approx(q.last_close)
        assert f"suspect data: the close moved -90% on {SPLIT_DAY}" in (q.method_reason or "")
        versions = len(storage.model_versions(s, kept.id))
    assert "training waits: suspect move" in notes[KEPT]
    assert versions == 1

    app = create_app(serving_settings.replace(api_response_ttl=0), engine)
    client = app.test_client()
    rows = {r["ticker"]: r for r in client.get("/v1/summary").get_json()["tickers"]}
    assert rows[KEPT]["suspect"]["day"] == SPLIT_DAY.isoformat()
    assert rows[REVISED]["suspect"] is None
    forecast = client.get(f"/v1/forecasts/{KEPT}").get_json()
    assert forecast["method"] == "persistence" and str(SPLIT_DAY) in forecast["method_reason"]
    series = client.get(f"/v1/series/{REVISED}").get_json()
    assert series["actions"] == [{"date": str(SPLIT_DAY), "kind": "split", "value": 10.0}]

    runner = CliRunner()
    shown = runner.invoke(cli, ["prices", "show", KEPT, "--last", "3"])
    assert shown.exit_code == 0 and f"suspect since {SPLIT_DAY}" in shown.output
    shown = runner.invoke(cli, ["prices", "show", REVISED, "--last", "3"])
    assert "split 10:1" in shown.output
    resolved = runner.invoke(cli, ["tickers", "resolve", KEPT])
    assert resolved.exit_code == 0, resolved.output
    assert f"{KEPT}: resolved" in resolved.output
    with sessions() as s:
        kept = s.scalars(select(storage.Ticker).where(storage.Ticker.symbol == KEPT)).one()
        assert kept.suspect_day is None and kept.suspect_note is None
    again = runner.invoke(cli, ["tickers", "resolve", KEPT])
    assert f"{KEPT}: not suspect" in again.output
