"""yfinance provider without network: a patched history function for every failure path, and
recorded Yahoo chart-API responses replayed through yfinance's own request/parse code."""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from yfinance.exceptions import YFPricesMissingError, YFRateLimitError, YFTzMissingError

from forecaster.errors import (
    InvalidDateRange,
    InvalidTicker,
    ProviderError,
    RateLimited,
    UnknownTicker,
)
from forecaster.providers.yfinance import YFinanceProvider
from forecaster.validation import validate_prices

FIXTURES = Path(__file__).parent / "fixtures" / "yfinance"
NY = "America/New_York"
AFTER_CLOSE = datetime(2024, 1, 10, 23, 0, tzinfo=UTC)  # 18:00 in New York


def yahoo_frame(days: list[str], *, auto_adjust: bool = False, tz: str | None = NY) -> pd.DataFrame:
    """Shaped like Ticker.history: capitalised columns, tz-aware 'Date' index at midnight local."""
    n = len(days)
    close = np.linspace(100, 100 + n - 1, n)
    data: dict[str, Any] = {
        "Open": close - 0.5,
        "High": close + 1.0,
        "Low": close - 1.0,
        "Close": close,
    }
    if not auto_adjust:
        data["Adj Close"] = close * 0.99
    data["Volume"] = np.full(n, 1_000_000)
    index = pd.DatetimeIndex(pd.to_datetime(days), name="Date")
    if tz:
        index = index.tz_localize(tz)
    return pd.DataFrame(data, index=index)


class Recorder:
    """A history function that replays a script of results/exceptions and records every call."""

    def __init__(self, *script: Any) -> None:
        self.script = list(script)
        self.calls: list[dict[str, Any]] = []

    def __call__(self, symbol: str, **kwargs: Any) -> pd.DataFrame:
        self.calls.append({"symbol": symbol, **kwargs})
        item = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(item, BaseException):
            raise item
        return item


def provider(history: Any, **kwargs: Any) -> tuple[YFinanceProvider, list[float]]:
    delays: list[float] = []
    p = YFinanceProvider(
        history=history,
        sleep=delays.append,
        rng=random.Random(7),
        now=lambda: AFTER_CLOSE,
        **kwargs,
    )
    return p, delays


DAYS = ["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05", "2024-01-08"]


def test_plain_columns_tz_aware_index() -> None:
    history = Recorder(yahoo_frame(DAYS))
    p, _ = provider(history)
    got = p.fetch("aapl", date(2024, 1, 2), date(2024, 1, 8))
    assert list(got.columns) == ["open", "high", "low", "close", "adj_close", "volume"]
    assert got.index.tz is None
    assert [d.date().isoformat() for d in got.index] == DAYS  # exchange-local dates kept
    assert got["adj_close"].iloc[0] == pytest.approx(99.0)
    call = history.calls[0]
    assert call["symbol"] == "AAPL"
    assert call["auto_adjust"] is False and call["actions"] is True and call["interval"] == "1d"
    assert (call["start"], call["end"]) == (
        "2024-01-02",
        "2024-01-09",
    )  # inclusive -> exclusive end


def test_auto_adjust_is_explicit_and_recorded() -> None:
    history = Recorder(yahoo_frame(DAYS, auto_adjust=True))
    p, _ = provider(history, auto_adjust=True)
    got = p.fetch("AAPL", date(2024, 1, 2), None)
    assert p.adjusted is True
    assert history.calls[0]["auto_adjust"] is True
    assert "end" not in history.calls[0]
    assert got["adj_close"].isna().all()


def test_full_history_asks_for_period_max() -> None:
    history = Recorder(yahoo_frame(DAYS))
    p, _ = provider(history)
    p.fetch("AAPL", None, None)
    assert history.calls[0]["period"] == "max" and "start" not in history.calls[0]


def test_multiindex_columns() -> None:
    frame = yahoo_frame(DAYS)
    frame.columns = pd.MultiIndex.from_product([frame.columns, ["AAPL"]], names=["Price", "Ticker"])
    p, _ = provider(Recorder(frame))
    got = p.fetch("AAPL", date(2024, 1, 2), date(2024, 1, 8))
    assert list(got.columns) == ["open", "high", "low", "close", "adj_close", "volume"]
    assert len(got) == 5


def test_partial_range_keeps_what_is_there_within_bounds() -> None:
    # Asked for 2024-01-02..2024-01-10; Yahoo returns fewer days plus one stray row outside.
    frame = yahoo_frame(["2023-12-29", "2024-01-03", "2024-01-04"])
    p, _ = provider(Recorder(frame))
    got = p.fetch("AAPL", date(2024, 1, 2), date(2024, 1, 10))
    assert [d.date().isoformat() for d in got.index] == ["2024-01-03", "2024-01-04"]


def test_unknown_symbol() -> None:
    p, _ = provider(Recorder(YFTzMissingError("NOPE")))
    with pytest.raises(UnknownTicker, match="NOPE"):
        p.fetch("NOPE", date(2024, 1, 2), date(2024, 1, 8))


def test_empty_full_history_is_unknown_but_empty_range_is_not() -> None:
    p, _ = provider(Recorder(pd.DataFrame()))
    with pytest.raises(UnknownTicker):
        p.fetch("AAPL", None, None)
    missing = YFPricesMissingError("AAPL", "(1d 2024-01-06 -> 2024-01-07)")
    p, _ = provider(Recorder(missing))
    assert p.fetch("AAPL", date(2024, 1, 6), date(2024, 1, 7)).empty  # a weekend: no bars
    p, _ = provider(Recorder(pd.DataFrame()))
    assert p.fetch("AAPL", date(2024, 1, 6), date(2024, 1, 7)).empty


def test_rate_limited_then_recovered_with_capped_backoff() -> None:
    history = Recorder(
        YFRateLimitError(), YFRateLimitError(), YFRateLimitError(), yahoo_frame(DAYS)
    )
    p, delays = provider(history, backoff_base=1.0, backoff_cap=3.0, max_retries=5)
    got = p.fetch("AAPL", date(2024, 1, 2), date(2024, 1, 8))
    assert len(got) == 5
    assert len(history.calls) == 4 and len(delays) == 3
    # full jitter: attempt k waits uniform(0, min(cap, base * 2**k))
    for k, delay in enumerate(delays):
        assert 0 <= delay <= min(3.0, 2**k)


def test_rate_limited_past_the_cap() -> None:
    history = Recorder(YFRateLimitError())
    p, delays = provider(history, max_retries=3)
    with pytest.raises(RateLimited, match="after 3 retries"):
        p.fetch("AAPL", date(2024, 1, 2), date(2024, 1, 8))
    assert len(history.calls) == 4 and len(delays) == 3


def test_network_unreachable() -> None:
    history = Recorder(ConnectionError("Could not resolve host: query2.finance.yahoo.com"))
    p, delays = provider(history, max_retries=2)
    with pytest.raises(ProviderError, match="network unreachable"):
        p.fetch("AAPL", date(2024, 1, 2), date(2024, 1, 8))
    assert len(delays) == 2


def test_other_errors_and_malformed_responses() -> None:
    p, delays = provider(Recorder(ValueError("unexpected JSON")))
    with pytest.raises(ProviderError, match="unexpected JSON"):
        p.fetch("AAPL", date(2024, 1, 2), date(2024, 1, 8))
    assert delays == []  # not retried
    p, _ = provider(Recorder(yahoo_frame(DAYS).drop(columns=["Volume"])))
    with pytest.raises(ProviderError, match="missing columns: volume"):
        p.fetch("AAPL", date(2024, 1, 2), date(2024, 1, 8))


def test_todays_unfinished_bar_is_dropped() -> None:
    frame = yahoo_frame([*DAYS, "2024-01-09"])
    during = datetime(2024, 1, 9, 17, 0, tzinfo=UTC)  # 12:00 in New York: session running
    p = YFinanceProvider(history=Recorder(frame), now=lambda: during)
    assert p.fetch("AAPL", date(2024, 1, 2), None).index[-1] == pd.Timestamp("2024-01-08")
    after = datetime(2024, 1, 9, 22, 0, tzinfo=UTC)  # 17:00 in New York: closed
    p = YFinanceProvider(history=Recorder(frame), now=lambda: after)
    assert p.fetch("AAPL", date(2024, 1, 2), None).index[-1] == pd.Timestamp("2024-01-09")


def test_rows_failing_validation_are_rejected_with_reasons() -> None:
    frame = yahoo_frame(DAYS)
    frame.iloc[1, frame.columns.get_loc("Close")] = np.nan  # trailing-NaN style row (#2925)
    frame.iloc[2, frame.columns.get_loc("High")] = 50.0  # high < low
    frame.iloc[3, frame.columns.get_loc("Volume")] = -10
    p, _ = provider(Recorder(frame))
    report = validate_prices(p.fetch("AAPL", date(2024, 1, 2), date(2024, 1, 8)))
    assert len(report.valid) == 2
    reasons = " | ".join(report.rejected["reason"])
    for reason in ("close is NaN", "high < low", "volume is negative"):
        assert reason in reasons


def test_input_checked_before_any_request() -> None:
    history = Recorder(yahoo_frame(DAYS))
    p, _ = provider(history)
    with pytest.raises(InvalidTicker):
        p.fetch("AA PL", None, None)
    with pytest.raises(InvalidDateRange):
        p.fetch("AAPL", date(2024, 1, 8), date(2024, 1, 2))
    assert history.calls == []


# ---------------------------------------------------------------- recorded HTTP responses


class RecordedResponse:
    def __init__(self, document: dict[str, Any], status_code: int = 200) -> None:
        self._document = document
        self.status_code = status_code
        self.text = json.dumps(document)

    def json(self) -> dict[str, Any]:
        return self._document

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise OSError(f"HTTP {self.status_code}")


@pytest.fixture
def replay(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[Any]:
    """Route yfinance's HTTP layer to a script of recorded responses/exceptions."""
    import yfinance as yf
    from yfinance.data import YfData

    yf.set_tz_cache_location(str(tmp_path / "tz"))
    script: list[Any] = []

    def get(self: Any, url: str, params: Any = None, timeout: float = 30, **kwargs: Any) -> Any:
        item = script.pop(0) if len(script) > 1 else script[0]
        if isinstance(item, BaseException):
            raise item
        return item

    monkeypatch.setattr(YfData, "get", get)
    monkeypatch.setattr(YfData, "cache_get", get)
    return script


pytestmark_yf = pytest.mark.filterwarnings("ignore:The inplace keyword:Warning")


@pytestmark_yf
def test_recorded_chart_response_through_real_yfinance(replay: list[Any]) -> None:
    doc = json.loads((FIXTURES / "chart_GOOG_2013-02-19_2013-03-01.json").read_text())
    replay.append(RecordedResponse(doc))
    p = YFinanceProvider(sleep=lambda s: None)
    got = p.fetch("GOOG", date(2013, 2, 19), date(2013, 3, 1))
    assert len(got) == 9
    assert got.index[-1] == pd.Timestamp("2013-03-01")
    assert got["close"].iloc[-1] == pytest.approx(806.19)
    assert validate_prices(got).ok


@pytestmark_yf
def test_recorded_not_found_response_is_unknown_ticker(replay: list[Any]) -> None:
    replay.append(RecordedResponse(json.loads((FIXTURES / "chart_not_found.json").read_text())))
    with pytest.raises(UnknownTicker):
        YFinanceProvider(sleep=lambda s: None).fetch("NOPE", date(2013, 2, 19), date(2013, 3, 1))


@pytestmark_yf
def test_recorded_rate_limit_then_success(replay: list[Any]) -> None:
    doc = json.loads((FIXTURES / "chart_GOOG_2013-02-19_2013-03-01.json").read_text())
    replay.extend([YFRateLimitError(), RecordedResponse(doc)])
    delays: list[float] = []
    got = YFinanceProvider(sleep=delays.append).fetch("GOOG", date(2013, 2, 19), date(2013, 3, 1))
    assert len(got) == 9 and len(delays) == 1


@pytestmark_yf
def test_splits_and_dividends_in_a_recorded_response_come_with_the_bars(
    replay: list[Any],
) -> None:
    """GOOG's recorded chart response with a split and a dividend event added in Yahoo's
    `events` format (Yahoo sends them with `events=div,splits`, which `actions=True` asks for)."""
    doc = json.loads((FIXTURES / "chart_GOOG_2013-02-19_2013-03-01.json").read_text())
    stamps = doc["chart"]["result"][0]["timestamp"]
    doc["chart"]["result"][0]["events"] = {
        "splits": {
            str(stamps[5]): {
                "date": stamps[5],
                "numerator": 10,
                "denominator": 1,
                "splitRatio": "10:1",
            }
        },
        "dividends": {str(stamps[2]): {"amount": 0.25, "date": stamps[2]}},
    }
    replay.append(RecordedResponse(doc))
    got = YFinanceProvider(sleep=lambda s: None).fetch("GOOG", date(2013, 2, 19), date(2013, 3, 1))
    assert len(got) == 9 and list(got.columns)[-1] == "volume"  # no action columns among prices
    actions = got.attrs["actions"]
    assert sorted(actions["kind"]) == ["dividend", "split"]
    by_kind = {row.kind: (day.date(), row.value) for day, row in actions.iterrows()}
    assert by_kind == {
        "split": (date(2013, 2, 26), 10.0),
        "dividend": (date(2013, 2, 21), 0.25),
    }
