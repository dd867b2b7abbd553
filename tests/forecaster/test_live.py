"""The live record: every method's forecast of each night is stored whichever serves, scored when
the close arrives, and a serving network that turns out significantly worse than the best
baseline is demoted until a full backtest."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from forecaster import ingest, live, service, storage
from forecaster.providers.synthetic import SyntheticProvider
from forecaster.settings import Settings

pytestmark = pytest.mark.slow

SYMBOL = "SYN-AR50-1"  # AR(0.5): the tiny test network serves it (tests/jobs/test_integrity.py)
TRAINED_THROUGH = date(2018, 8, 31)
NIGHTS = 80


class FrameProvider:
    name = "synthetic"
    adjusted = False

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self.until = TRAINED_THROUGH

    def fetch(self, ticker: str, start: date | None, end: date | None) -> pd.DataFrame:
        out = self.frame.loc[self.frame.index <= pd.Timestamp(min(end or self.until, self.until))]
        return out.loc[out.index >= pd.Timestamp(start)] if start else out


def ar_then_random_walk() -> pd.DataFrame:
    """SYN-AR50-1 up to TRAINED_THROUGH, then a random walk: the network's AR structure is gone."""
    ar = SyntheticProvider().fetch(SYMBOL, date(2015, 1, 1), TRAINED_THROUGH)
    days = pd.bdate_range(ar.index[-1] + pd.Timedelta(days=1), periods=NIGHTS + 1, name="date")
    rng = np.random.default_rng(5)
    close = ar["close"].iloc[-1] * np.exp(np.cumsum(rng.normal(0.0, 0.012, len(days))))
    prev = np.concatenate([[ar["close"].iloc[-1]], close[:-1]])
    walk = pd.DataFrame(
        {
            "open": prev,
            "high": np.maximum(prev, close) * 1.002,
            "low": np.minimum(prev, close) * 0.998,
            "close": close,
            "adj_close": close,
            "volume": 1e6,
        },
        index=days,
    )
    return pd.concat([ar, walk])


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_eighty_nights_of_live_record_and_a_demotion(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    settings = settings.replace(
        backtest_days=240, backtest_refit_every=120, min_backtest_forecasts=200
    )
    provider = FrameProvider(ar_then_random_walk())
    with sessions.begin() as s:
        ingest.backfill_ticker(s, provider, SYMBOL)
        trained = service.train_ticker(s, settings, SYMBOL)
        assert trained.model_version.method == "lstm"
        service.predict_ticker(s, settings, SYMBOL)
    methods, reasons = [], []
    for day in provider.frame.index[provider.frame.index > pd.Timestamp(TRAINED_THROUGH)]:
        provider.until = day.date()  # the clock moves one session a night
        with sessions.begin() as s:
            ingest.backfill_ticker(s, provider, SYMBOL)
            p = service.predict_ticker(s, settings, SYMBOL)  # no retraining: the same network
            methods.append(p.method)
            reasons.append(p.method_reason or "")

    with sessions() as s:
        ticker = storage.get_ticker(s, SYMBOL)
        assert ticker is not None
        record = live.live_record(s, ticker.id, TRAINED_THROUGH)
        rows = s.execute(
            select(storage.LiveForecast.as_of_date, storage.LiveForecast.method,
                   storage.LiveForecast.predicted_close, storage.LiveForecast.target_date)
            .where(storage.LiveForecast.ticker_id == ticker.id)
        ).all()  # fmt: skip
        closes = storage.load_prices(s, ticker.id)["close"]
        document = storage.latest_prediction(s, ticker.id).document  # type: ignore[union-attr]
        demoted_under = ticker.demoted_under

    # every method forecast every night, whichever served
    assert len(rows) == 4 * (NIGHTS + 2)  # the night of training, and each new day
    # the record recomputed from the stored forecasts and closes
    actual = {d.date(): c for d, c in closes.items()}
    errors: dict[str, list[float]] = {m: [] for m in live.METHODS}
    for as_of, method, predicted, target in sorted(rows):
        if target in actual and as_of > TRAINED_THROUGH:
            errors[method].append(predicted - actual[target])
    assert record.n == NIGHTS == len(errors["lstm"])  # the last night's target is not in yet
    for method in live.METHODS:
        assert record.mae[method] == pytest.approx(np.mean(np.abs(errors[method])), rel=1e-12)
    assert record.ratio("lstm") > 1.05  # the AR network on a random walk loses to persistence

    # demoted once the record of >= 60 nights was significantly worse, and it stuck
    assert methods[0] == "lstm"
    first = next(i for i, m in enumerate(methods) if m != "lstm")
    assert first >= settings.live_min_forecasts  # never before the minimum evidence
    assert all(m == methods[first] for m in methods[first:])
    assert methods[first] in ("persistence", "drift", "median_return")
    assert reasons[first].startswith("demoted by its live record: network MAE")
    assert demoted_under is not None and '"demoted":true' in (document or "")
