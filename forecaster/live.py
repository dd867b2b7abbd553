"""The live record: how the forecasts actually did after the backtest.

Every night the forecast stage stores what **every** method forecast (the network and each
baseline), whichever serves, so nothing is selected after the fact. Once the target day's close
is stored, each is scored. A ticker's live record counts the nights after its backtest's end: the
days no backtest figure covers, forecast by the networks that really served (warm-started on
quiet nights) rather than by the backtest's cold refits.

**Demotion**: when the network serves and its live record of at least
`STOCKCAST_LIVE_MIN_FORECASTS` nights says it is significantly worse than the best baseline
(Diebold-Mariano, one-sided, p < `STOCKCAST_SKILL_ALPHA`), that baseline serves and the reason
says so. The demotion sticks to the backtest it happened under (`tickers.demoted_under`): only a
full backtest can promote the network again.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
from sqlalchemy import and_, delete, select
from sqlalchemy.orm import Session

from forecaster import storage
from forecaster.evaluation import diebold_mariano
from forecaster.policy import BASELINES

METHODS = ("lstm", *BASELINES)


@dataclass(frozen=True)
class LiveRecord:
    since: date | None  # forecasts made after this day (the backtest's end) count
    n: int  # scored nights on which every method forecast
    mae: dict[str, float | None]
    best_baseline: str | None  # the baseline with the lowest live MAE
    dm_pvalue: float | None  # one-sided: the network is more accurate than the best baseline
    worse_pvalue: float | None  # one-sided: the best baseline is more accurate than the network

    def ratio(self, method: str) -> float | None:
        mae, base = self.mae.get(method), self.mae.get("persistence")
        return None if mae is None or not base else mae / base


def store_forecasts(
    session: Session,
    ticker_id: int,
    as_of: date,
    target: date,
    closes: dict[str, float],
    version_id: int | None,
) -> None:
    """Record each method's forecast close of one night (a rerun of the night replaces it)."""
    L = storage.LiveForecast
    session.execute(delete(L).where(L.ticker_id == ticker_id, L.as_of_date == as_of))
    for method, close in closes.items():
        session.add(
            L(
                ticker_id=ticker_id,
                as_of_date=as_of,
                method=method,
                target_date=target,
                predicted_close=float(close),
                model_version_id=version_id,
            )
        )
    session.flush()


def scored(session: Session, ticker_id: int, since: date | None) -> dict[date, dict[str, Any]]:
    """as_of -> {"actual": close, method: forecast, ...} for the nights whose target day's close
    is stored, made after `since`."""
    L, P = storage.LiveForecast, storage.Price
    query = (
        select(L.as_of_date, L.method, L.predicted_close, P.close)
        .join(P, and_(P.ticker_id == L.ticker_id, P.date == L.target_date))
        .where(L.ticker_id == ticker_id)
    )
    if since is not None:
        query = query.where(L.as_of_date > since)
    nights: dict[date, dict[str, Any]] = defaultdict(dict)
    for as_of, method, predicted, actual in session.execute(query):
        nights[as_of][method] = predicted
        nights[as_of]["actual"] = actual
    return dict(nights)


def live_record(session: Session, ticker_id: int, since: date | None) -> LiveRecord:
    nights = scored(session, ticker_id, since)
    days = sorted(d for d, night in nights.items() if all(m in night for m in METHODS))
    if not days:
        return LiveRecord(since, 0, {m: None for m in METHODS}, None, None, None)
    actual = np.array([nights[d]["actual"] for d in days])
    errors = {m: np.array([nights[d][m] for d in days]) - actual for m in METHODS}
    mae = {m: float(np.mean(np.abs(e))) for m, e in errors.items()}
    best = min(BASELINES, key=lambda b: mae[b])  # ties: the simplest first
    better = worse = None
    if len(days) >= 3:  # the smallest sample the DM test takes
        better = _finite(diebold_mariano(errors["lstm"], errors[best]).pvalue)
        worse = _finite(diebold_mariano(errors[best], errors["lstm"]).pvalue)
    return LiveRecord(since, len(days), dict(mae), best, better, worse)


def demotion(record: LiveRecord, min_forecasts: int, alpha: float) -> str | None:
    """Why the network no longer serves, or None while its live record does not say so."""
    if record.n < min_forecasts or record.worse_pvalue is None or not record.worse_pvalue < alpha:
        return None
    lstm, best = record.mae["lstm"], record.mae[record.best_baseline or "persistence"]
    ratio = lstm / best if lstm is not None and best else float("nan")
    return (
        f"demoted by its live record: network MAE {ratio:.4f}x {record.best_baseline} over "
        f"{record.n} live forecasts after {record.since}, DM p={record.worse_pvalue:.3g} (the "
        "network is worse); a full backtest may promote it again"
    )


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None
