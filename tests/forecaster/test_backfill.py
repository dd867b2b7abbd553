"""Backfill: idempotent upserts, incremental ranges, rejection and atomicity, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from forecaster import storage
from forecaster.errors import UnknownTicker, ValidationFailed
from forecaster.ingest import IntegrityRules, _missing_ranges, backfill_ticker
from forecaster.providers.base import canonicalize
from forecaster.providers.sample import SampleProvider
from forecaster.service import require_ticker


def count_prices(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(storage.Price)) or 0


NO_OVERLAP = IntegrityRules(overlap_days=0)


class FrameProvider:
    """A provider returning a fixed frame (filtered to the asked range), recording its calls."""

    name = "fixture"
    adjusted = False

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self.calls: list[tuple[date | None, date | None]] = []

    def fetch(self, ticker: str, start: date | None, end: date | None) -> pd.DataFrame:
        self.calls.append((start, end))
        out = self.frame
        if start is not None:
            out = out.loc[out.index >= pd.Timestamp(start)]
        if end is not None:
            out = out.loc[out.index <= pd.Timestamp(end)]
        return out.copy()


def test_backfill_twice_is_idempotent(sessions: sessionmaker[Session]) -> None:
    provider = SampleProvider()
    with sessions.begin() as s:
        first = backfill_ticker(s, provider, "^GSPC", date(2018, 1, 1), date(2018, 12, 31))
    assert (first.inserted, first.updated, first.rejected) == (251, 0, 0)
    with sessions.begin() as s:
        again = backfill_ticker(s, provider, "^GSPC", date(2018, 1, 1), date(2018, 12, 31))
        assert count_prices(s) == 251
    # only the overlap is read again (to notice revised history), and it agrees
    assert (again.fetched, again.inserted, again.updated, again.unchanged) == (10, 0, 0, 10)
    assert again.revised_from is None
    with sessions.begin() as s:
        forced = backfill_ticker(
            s, provider, "^GSPC", date(2018, 1, 1), date(2018, 12, 31), force=True
        )
        assert count_prices(s) == 251
    assert (forced.fetched, forced.inserted, forced.updated, forced.unchanged) == (251, 0, 0, 251)


def test_incremental_fetches_only_missing_ranges(sessions: sessionmaker[Session]) -> None:
    provider = FrameProvider(SampleProvider().fetch("GOOG", date(2013, 1, 2), date(2013, 3, 1)))
    with sessions.begin() as s:
        backfill_ticker(s, provider, "GOOG", date(2013, 2, 1), date(2013, 2, 15))
    with sessions.begin() as s:
        result = backfill_ticker(
            s, provider, "GOOG", date(2013, 1, 2), date(2013, 3, 1), rules=NO_OVERLAP
        )
    assert provider.calls[1:] == [
        (date(2013, 1, 2), date(2013, 1, 31)),
        (date(2013, 2, 16), date(2013, 3, 1)),
    ]
    first_batch = provider.frame.loc["2013-02-01":"2013-02-15"]
    assert result.inserted == len(provider.frame) - len(first_batch)
    assert (result.first_date, result.last_date) == (date(2013, 1, 2), date(2013, 3, 1))


def test_changed_rows_are_updated_not_duplicated(sessions: sessionmaker[Session]) -> None:
    frame = SampleProvider().fetch("GOOG", date(2013, 2, 1), date(2013, 2, 28))
    with sessions.begin() as s:
        backfill_ticker(s, FrameProvider(frame), "GOOG")
    revised = frame.copy()
    revised.iloc[-1, revised.columns.get_loc("close")] = revised["low"].iloc[-1]
    with sessions.begin() as s:
        result = backfill_ticker(s, FrameProvider(revised), "GOOG", force=True)
        assert count_prices(s) == len(frame)
        stored = storage.load_prices(s, require_ticker(s, "GOOG").id)
    assert (result.inserted, result.updated, result.unchanged) == (0, 1, len(frame) - 1)
    assert stored["close"].iloc[-1] == pytest.approx(revised["low"].iloc[-1])


def test_invalid_rows_rejected_and_reported(sessions: sessionmaker[Session]) -> None:
    frame = SampleProvider().fetch("GOOG", date(2013, 2, 1), date(2013, 2, 28)).copy()
    frame.iloc[3, frame.columns.get_loc("close")] = np.nan
    frame.iloc[5, frame.columns.get_loc("high")] = 1.0
    with sessions.begin() as s:
        result = backfill_ticker(s, FrameProvider(frame), "GOOG")
        assert count_prices(s) == len(frame) - 2
    assert result.rejected == 2
    assert "close is NaN" in result.rejected_summary
    assert "high < low" in result.rejected_summary


def test_strict_rejection_stores_nothing(sessions: sessionmaker[Session]) -> None:
    frame = SampleProvider().fetch("GOOG", date(2013, 2, 1), date(2013, 2, 28)).copy()
    frame.iloc[3, frame.columns.get_loc("volume")] = -1
    with pytest.raises(ValidationFailed, match="volume is negative"), sessions.begin() as s:
        backfill_ticker(s, FrameProvider(frame), "GOOG", strict=True)
    with sessions() as s:
        assert count_prices(s) == 0
        assert storage.get_ticker(s, "GOOG") is None


def test_failure_mid_batch_rolls_back_everything(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    from forecaster.storage import prices

    real = prices.upsert
    calls = {"n": 0}

    def flaky(session: Session, model: type, rows: list, keys: list[str]) -> None:
        calls["n"] += 1
        real(session, model, rows[:10], keys)  # part of the batch reaches the database ...
        raise RuntimeError("connection lost")  # ... then the write fails

    monkeypatch.setattr(prices, "upsert", flaky)
    with pytest.raises(RuntimeError), sessions.begin() as s:
        backfill_ticker(s, SampleProvider(), "GOOG", date(2013, 1, 1), date(2013, 3, 1))
    with sessions() as s:
        assert count_prices(s) == 0
    assert calls["n"] == 1


def test_unknown_ticker_and_empty_first_fetch(sessions: sessionmaker[Session]) -> None:
    with pytest.raises(UnknownTicker), sessions.begin() as s:
        backfill_ticker(s, SampleProvider(), "AAPL")
    with pytest.raises(UnknownTicker, match="no prices"), sessions.begin() as s:
        backfill_ticker(s, SampleProvider(), "GOOG", date(2015, 1, 1), date(2015, 2, 1))
    with sessions() as s:
        assert storage.all_symbols(s) == []


def test_missing_ranges() -> None:
    d = date
    assert _missing_ranges(None, None, None, None) == [(None, None)]
    assert _missing_ranges(d(2020, 1, 5), d(2020, 1, 10), None, None) == [(d(2020, 1, 11), None)]
    assert _missing_ranges(d(2020, 1, 5), d(2020, 1, 10), d(2020, 1, 1), d(2020, 1, 8)) == [
        (d(2020, 1, 1), d(2020, 1, 4))
    ]
    assert _missing_ranges(d(2020, 1, 5), d(2020, 1, 10), d(2020, 1, 6), d(2020, 1, 8)) == []


def test_load_prices_round_trip(sessions: sessionmaker[Session]) -> None:
    source = SampleProvider().fetch("^GSPC", date(2018, 12, 1), date(2018, 12, 31))
    with sessions.begin() as s:
        backfill_ticker(s, SampleProvider(), "^GSPC", date(2018, 12, 1), date(2018, 12, 31))
    with sessions() as s:
        tid = require_ticker(s, "^GSPC").id
        loaded = storage.load_prices(s, tid)
        last5 = storage.load_prices(s, tid, limit=5)
    pd.testing.assert_frame_equal(loaded, canonicalize(source), check_freq=False)
    assert list(last5.index.day) == [24, 26, 27, 28, 31]


def test_concurrent_backfills_of_a_new_ticker_all_succeed(
    sessions: sessionmaker[Session],
) -> None:
    """Ticker creation is INSERT ... ON CONFLICT DO NOTHING: no IntegrityError for the losers."""
    import threading

    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def backfill() -> None:
        try:
            start.wait()
            with sessions.begin() as s:
                backfill_ticker(s, SampleProvider(), "GOOG", date(2013, 2, 1), date(2013, 3, 1))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=backfill) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(storage.Ticker)) == 1
        assert count_prices(s) == 20  # 2013-02-01 .. 2013-03-01 trading days, stored once
