"""The forecast of the next trading session: the champion's serving method, every method's
forecast recorded for the live record, and the stored document the API serves."""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

import forecaster.series_document  # noqa: F401  (its commit hook renders the series)
from forecaster import artifacts, documents, live, storage
from forecaster.errors import ModelArtifactError, NoChampion, UnknownTicker
from forecaster.evaluation import baseline_next_log_return
from forecaster.policy import BASELINES, backtest_key
from forecaster.providers.base import normalize_ticker
from forecaster.settings import Settings

log = logging.getLogger(__name__)


def require_ticker(session: Session, ticker: str | storage.Ticker) -> storage.Ticker:
    """The ticker's row: looked up by symbol, or, for a row a caller resolved earlier (in another
    session of the same step), read again by its id: current, whatever happened meanwhile."""
    if isinstance(ticker, storage.Ticker):
        if ticker in session:
            return ticker
        row = session.get(storage.Ticker, ticker.id)
        if row is None:
            raise UnknownTicker(ticker.symbol, "removed while the step ran")
        return row
    symbol = normalize_ticker(ticker)
    row = storage.get_ticker(session, symbol)
    if row is None:
        raise UnknownTicker(symbol, "not in the database; run `stockcast backfill` first")
    return row


def _network_log_return(
    session: Session, version: storage.ModelVersion, prices: pd.DataFrame
) -> float | None:
    try:
        return artifacts.load(session, version).predict_next(prices).predicted_log_return
    except ModelArtifactError as exc:
        log.warning("no network forecast for the live record", extra={"error": str(exc)})
        return None


def backtest_end(version: storage.ModelVersion) -> date | None:
    bt = version.record("backtest")
    return date.fromisoformat(bt["end"]) if bt is not None and bt.get("end") else None


def serving_choice(
    settings: Settings,
    row: storage.Ticker,
    version: storage.ModelVersion,
    record: live.LiveRecord,
) -> tuple[str, str | None]:
    """The method that serves tonight and why: the version's, unless the ticker is suspect or
    its network was demoted by the live record under this backtest."""
    method, reason = version.method, version.method_reason
    if row.suspect_day is not None:  # nothing learned is trusted across the move
        return "persistence", f"suspect data: {row.suspect_note}; persistence serves until resolved"
    if method != "lstm":
        return method, reason
    end = backtest_end(version)
    why = live.demotion(record, settings.live_min_forecasts, settings.skill_alpha)
    if why is not None and row.demoted_under != end:
        row.demoted_under = end  # sticks until a full backtest (a new end) replaces it
        log.warning("network demoted by its live record", extra={"ticker": row.symbol})
    if demoted(row, version):
        best = record.best_baseline or version.metrics["backtest"]["best_baseline"]
        return best, why or (
            f"demoted by its live record after {end}; a full backtest may promote it again"
        )
    return method, reason


def predict_ticker(
    session: Session, settings: Settings, ticker: str | storage.Ticker
) -> storage.Prediction:
    """The serving method forecasts the close of the next trading session after the last stored
    day (forecaster.policy, then the suspect and demotion rules above); every method's forecast
    of the night goes to the live record."""
    from forecaster.calendar import next_trading_day
    from forecaster.evaluation import DRIFT_LOOKBACK, ewma_volatility

    row = require_ticker(session, ticker)
    version = storage.champion(session, row.id)
    if version is None:
        raise NoChampion(row.symbol)
    serving = version.record("serving")
    # Enough recent rows for the window, the drift baseline and the volatility estimate.
    prices = storage.load_prices(session, row.id, limit=max(settings.window, DRIFT_LOOKBACK + 48))
    close = prices["close"].to_numpy(dtype="float64")
    as_of, last_close = prices.index[-1].date(), float(close[-1])
    target = next_trading_day(as_of, settings.exchange_calendar)
    if not serving:
        return _legacy(session, row, version, prices, target)
    returns: dict[str, float | None] = {
        b: baseline_next_log_return(b, close, serving["median_log_return"]) for b in BASELINES
    }
    returns["lstm"] = _network_log_return(session, version, prices)
    record = live.live_record(session, row.id, backtest_end(version))
    method, reason = serving_choice(settings, row, version, record)
    log_return = returns[method]
    if log_return is None:
        raise ModelArtifactError(f"{row.symbol}: the serving network could not be loaded")
    halfwidth = float(serving["interval_scales"][backtest_key(method)]) * float(
        ewma_volatility(close)[-1]
    )
    prediction = _store(
        session, row, version, prices, target, log_return, halfwidth, method, reason
    )
    closes = {m: last_close * float(np.exp(r)) for m, r in returns.items() if r is not None}
    live.store_forecasts(session, row.id, as_of, target, closes, version.id)
    # The API's response, rendered once here from the stored row (created_at as the database
    # keeps it), so serving it is one read (forecaster.documents).
    prediction.document = documents.render(
        row.symbol, prediction, version, record, demoted(row, version)
    )
    session.flush()
    log.info(
        "forecast stored",
        extra={
            "ticker": row.symbol,
            "as_of": str(prediction.as_of_date),
            "target": str(prediction.target_date),
            "predicted_close": round(prediction.predicted_close, 4),
            "method": method,
            "model_version": version.version,
        },
    )
    return prediction


def _legacy(
    session: Session,
    row: storage.Ticker,
    version: storage.ModelVersion,
    prices: pd.DataFrame,
    target: date,
) -> storage.Prediction:
    """A version from before serving methods: its network with its own fixed-width interval."""
    forecast = artifacts.load(session, version).predict_next(prices)
    halfwidth = float(np.log(forecast.upper / forecast.predicted_close))
    prediction = _store(
        session,
        row,
        version,
        prices,
        target,
        forecast.predicted_log_return,
        halfwidth,
        "lstm",
        version.method_reason,
    )
    prediction.document = documents.render(row.symbol, prediction, version, None)
    session.flush()
    return prediction


def render_again(session: Session, row: storage.Ticker) -> None:
    """Render the ticker's newest stored forecast document again from its rows (its version was
    just retired by a promotion), in the caller's transaction."""
    prediction = storage.latest_prediction(session, row.id)
    if prediction is None or prediction.document is None:  # none, or served from its rows
        return
    _render(session, row, prediction)


def render_missing_documents(session: Session) -> int:
    """Render the document of each ticker's newest forecast stored without one (written before
    documents existed, or cleared by migration 0015), so the API serves every ticker's latest
    forecast with one read. Returns how many were rendered. Flushed and let go of every 100
    tickers, so a large universe does not pile up in the session."""
    rendered = 0
    ids = session.scalars(select(storage.Ticker.id).order_by(storage.Ticker.id)).all()
    for n, ticker_id in enumerate(ids, 1):
        row = session.get(storage.Ticker, ticker_id)
        prediction = storage.latest_prediction(session, ticker_id)
        if row is not None and prediction is not None and prediction.document is None:
            _render(session, row, prediction)
            rendered += 1
        if n % 100 == 0:
            session.flush()
            session.expunge_all()
    session.flush()
    return rendered


def _render(session: Session, row: storage.Ticker, prediction: storage.Prediction) -> None:
    version = session.get(storage.ModelVersion, prediction.model_version_id)
    assert version is not None
    record, is_demoted = live_figures(session, row, version)
    prediction.document = documents.render(row.symbol, prediction, version, record, is_demoted)


def demoted(row: storage.Ticker, version: storage.ModelVersion) -> bool:
    """Whether the live record took this version's network off serving."""
    return row.demoted_under is not None and row.demoted_under == backtest_end(version)


def _store(
    session: Session,
    row: storage.Ticker,
    version: storage.ModelVersion,
    prices: pd.DataFrame,
    target: date,
    log_return: float,
    halfwidth: float,
    method: str,
    reason: str | None,
) -> storage.Prediction:
    """The forecast row of the night: the close and its interval from a log return."""
    last_close = float(prices["close"].iloc[-1])
    return storage.upsert_prediction(
        session,
        {
            "ticker_id": row.id,
            "model_version_id": version.id,
            "as_of_date": prices.index[-1].date(),
            "target_date": target,
            "last_close": last_close,
            "predicted_close": last_close * float(np.exp(log_return)),
            "lower": last_close * float(np.exp(log_return - halfwidth)),
            "upper": last_close * float(np.exp(log_return + halfwidth)),
            "coverage": float(version.interval_coverage),
            "method": method,
            "method_reason": reason,
        },
    )


def live_figures(
    session: Session, row: storage.Ticker, version: storage.ModelVersion
) -> tuple[Any, bool]:
    """The live record behind a version's forecasts (None for legacy versions), and whether it
    demoted the network."""
    serving = version.record("serving")
    if not serving:
        return None, False
    return live.live_record(session, row.id, backtest_end(version)), demoted(row, version)
