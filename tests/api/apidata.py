"""Seed data for API tests: prices, model versions and forecasts written straight through the ORM."""

from __future__ import annotations

from datetime import date, timedelta
from itertools import pairwise

from sqlalchemy.orm import Session, sessionmaker

from forecaster import service, storage
from forecaster.providers.sample import SampleProvider


def seed(sessions: sessionmaker[Session], gspc_forecast: bool = False) -> None:
    """GOOG Feb 2013 prices; v1 retired, v2 champion, v3 rejected; 6 daily forecasts.

    With gspc_forecast, ^GSPC (Dec 2018) also gets a champion and its 2018-12-31 forecast.
    """
    with sessions.begin() as s:
        service.backfill_ticker(s, SampleProvider(), "GOOG", date(2013, 2, 1), date(2013, 3, 1))
        service.backfill_ticker(s, SampleProvider(), "^GSPC", date(2018, 12, 1), date(2018, 12, 31))
        goog = storage.get_ticker(s, "GOOG")
        assert goog is not None
        common = dict(
            ticker_id=goog.id,
            config={"window": 7},
            train_start=date(2011, 1, 3),
            train_end=date(2012, 6, 1),
            test_start=date(2012, 9, 4),
            test_end=date(2013, 2, 22),
            n_train=300,
            train_seconds=1.5,
            persistence_mae=6.5,
            interval_halfwidth=0.02,
            interval_coverage=0.9,
            metrics={
                "metrics": {"model": {"mae": 6.4, "directional_accuracy": 0.52}},
                "mae_ratio": 0.98,
            },
        )
        mvs = [
            storage.ModelVersion(version=1, status="retired", mae=6.6, mae_ratio=1.01, **common),
            storage.ModelVersion(version=2, status="champion", mae=6.4, mae_ratio=0.98, **common),
            storage.ModelVersion(
                version=3,
                status="rejected",
                mae=7.0,
                mae_ratio=1.08,
                rejection_reason="worse",
                **common,
            ),
        ]
        s.add_all(mvs)
        s.flush()
        closes = storage.load_prices(s, goog.id)["close"]
        days = list(closes.index[-6:])
        for as_of, target in pairwise(days):
            last = float(closes[as_of])
            s.add(
                storage.Prediction(
                    ticker_id=goog.id,
                    model_version_id=mvs[1].id,
                    as_of_date=as_of.date(),
                    target_date=target.date(),
                    last_close=last,
                    predicted_close=last * 1.001,
                    lower=last * 0.98,
                    upper=last * 1.02,
                    coverage=0.9,
                )
            )
        # The newest forecast: its target day has no actual close yet.
        last_day = days[-1].date()
        s.add(
            storage.Prediction(
                ticker_id=goog.id,
                model_version_id=mvs[1].id,
                as_of_date=last_day,
                target_date=last_day + timedelta(days=3),
                last_close=float(closes.iloc[-1]),
                predicted_close=float(closes.iloc[-1]) * 1.002,
                lower=float(closes.iloc[-1]) * 0.98,
                upper=float(closes.iloc[-1]) * 1.02,
                coverage=0.9,
            )
        )
        if gspc_forecast:
            gspc = storage.get_ticker(s, "^GSPC")
            assert gspc is not None
            mv = storage.ModelVersion(
                version=1,
                status="champion",
                mae=13.0,
                mae_ratio=0.9976,
                **{**common, "ticker_id": gspc.id},
            )
            s.add(mv)
            s.flush()
            s.add(
                storage.Prediction(
                    ticker_id=gspc.id,
                    model_version_id=mv.id,
                    as_of_date=date(2018, 12, 31),
                    target_date=date(2019, 1, 2),
                    last_close=2506.85,
                    predicted_close=2507.64,
                    lower=2475.14,
                    upper=2540.56,
                    coverage=0.9,
                )
            )
