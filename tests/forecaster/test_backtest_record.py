"""The backtest record: every out-of-sample forecast of the newest full backtest, stored with the
version that ran it, kept by quiet nights, and enough to recompute the published figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from tinymodel import TINY

from forecaster import backtest_record, forecast_record, service, storage
from forecaster.policy import METHODS, backtest_key
from forecaster.training import TrainingOutcome


@pytest.mark.slow  # its fixture trains a network: `make test`, not the inner loop
def test_the_record_recomputes_the_published_figures(outcome: TrainingOutcome) -> None:
    record = outcome.record
    assert record is not None
    packed = backtest_record.pack(record)
    assert backtest_record.unpack(packed) == record
    bt = outcome.backtest
    rows = backtest_record.rows(record)
    assert len(rows) == bt["n_forecasts"] * len(METHODS)
    assert rows[0].target_date.isoformat() == bt["start"]
    assert rows[-1].target_date.isoformat() == bt["end"]
    for method in METHODS:
        mine = [r for r in rows if r.method == method]
        mae = np.mean([abs(r.predicted_close - r.actual_close) for r in mine])
        assert mae == pytest.approx(bt["metrics"][backtest_key(method)]["mae"], rel=1e-12)
        # Coverage is measured on folds 1..: fold 0 had no past to calibrate an interval on.
        scored = [r for r in mine if r.fold > 0]
        assert all(r.low is None and r.high is None for r in mine if r.fold == 0)
        inside = np.mean([r.low <= r.actual_close <= r.high for r in scored])  # type: ignore[operator]
        assert inside == pytest.approx(bt["coverage_by_method"][backtest_key(method)], abs=1e-12)
    # Every forecast knew only its origin: the origin is the trading day before the target.
    assert all(r.as_of < r.target_date for r in rows)
    dated = backtest_record.rows(
        record, start=rows[10].as_of, end=rows[20].as_of, methods=("lstm",)
    )
    assert {r.method for r in dated} == {"lstm"}
    assert dated[0].as_of == rows[10].as_of and dated[-1].as_of == rows[20].as_of


def test_a_record_of_another_format_is_refused() -> None:
    with pytest.raises(ValueError, match="format 99 is not 1"):
        backtest_record.unpack(backtest_record.pack({"format": 99}))


@pytest.mark.slow
def test_stored_with_its_version_kept_by_quiet_nights_and_purged(
    sessions: sessionmaker[Session], prices: pd.DataFrame
) -> None:
    # one epoch a fit: the record's bookkeeping is under test, not the network
    settings = TINY.replace(model=TINY.model.replace(epochs=1), backtest_every_days=5)
    cut = prices.index[-3]
    with sessions.begin() as s:
        ticker = storage.get_or_create_ticker(s, "GOOG", "sample")
        storage.upsert_prices(
            s, ticker, prices[prices.index <= cut], source="sample", adjusted=False
        )
    with sessions.begin() as s:
        first = service.train_ticker(s, settings, "GOOG").model_version
        first_id = first.id
    with sessions() as s:
        stored = s.scalars(select(storage.BacktestRecord)).one()
        assert stored.model_version_id == first_id and stored.n_forecasts == 260
        items = forecast_record.backtest_items(s, stored.ticker_id, None, None, None)
        assert len(items) == 260 * len(METHODS) and items[0].as_of > items[-1].as_of
        assert {i.model_version for i in items} == {1}
    with sessions.begin() as s:  # two new days: a quiet night reuses the backtest and its record
        ticker = storage.get_ticker(s, "GOOG")
        assert ticker is not None
        storage.upsert_prices(s, ticker, prices, source="sample", adjusted=False)
    with sessions.begin() as s:
        result = service.train_ticker(s, settings, "GOOG")
        assert result.model_version.version == 2
        assert result.model_version.metrics["serving"]["backtest_reused"]
    with sessions() as s:
        again = s.scalars(select(storage.BacktestRecord)).one()
        assert again.model_version_id == first_id  # the version whose backtest it is
        assert backtest_record.read(s, again.ticker_id).version == 1  # type: ignore[union-attr]
    with sessions.begin() as s:  # a changed configuration: a full backtest replaces the record
        result = service.train_ticker(s, settings.replace(backtest_days=130), "GOOG")
        newest_id = result.model_version.id
    with sessions() as s:
        newest = s.scalars(select(storage.BacktestRecord)).one()
        assert newest.model_version_id == newest_id and newest.n_forecasts == 130
        assert newest.end == pd.Timestamp(prices.index[-1]).date()
    with sessions.begin() as s:
        ticker = storage.get_ticker(s, "GOOG")
        assert ticker is not None
        storage.purge_ticker(s, ticker)
    with sessions() as s:
        assert s.scalars(select(storage.BacktestRecord)).all() == []
