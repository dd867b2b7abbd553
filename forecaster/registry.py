"""Model versions: metadata and artifact in one database transaction, one champion per ticker.

Each training produces a version whose served network was refit on every stored day and whose
skill was measured by a rolling-origin backtest (forecaster.training). The newest successfully
trained version becomes the champion, because it is the freshest: whether its network or a
simple baseline produces the forecasts is its `method`, chosen by forecaster.policy from the
backtest, so a network without measured skill is kept (its figures stay visible) but never
serves. A version is rejected only when its backtest produced no usable figures.

The artifact (forecaster.artifacts) is added in the transaction that records the version, so no
process can ever see a version without its network or a network without its version; the
previous champion is retired in that same transaction, and old versions' artifacts are pruned
there too (STOCKCAST_KEEP_VERSIONS).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

import forecaster.series_document  # noqa: F401  (its commit hook renders the series)
from forecaster import artifacts, backtest_record, storage
from forecaster.errors import ModelRejected, NoChampion
from forecaster.evaluation import finite
from forecaster.policy import backtest_key
from forecaster.predict import render_again
from forecaster.settings import Settings

if TYPE_CHECKING:
    from forecaster.model import ForecastBundle
    from forecaster.training import TrainingOutcome

log = logging.getLogger(__name__)


def load_champion(
    session: Session, ticker: storage.Ticker
) -> tuple[storage.ModelVersion, ForecastBundle]:
    row = storage.champion(session, ticker.id)
    if row is None:
        raise NoChampion(ticker.symbol)
    return row, artifacts.load(session, row)


@dataclass(frozen=True)
class Decision:
    promoted: bool
    reason: str | None


def decide(backtest: dict[str, Any]) -> Decision:
    """Promote unless the backtest figures are unusable (non-finite errors, no forecasts)."""
    mae, persistence = backtest.get("mae"), backtest.get("persistence_mae")
    if not backtest.get("n_forecasts"):
        return Decision(False, "the backtest made no forecasts")
    if mae is None or not math.isfinite(mae):
        return Decision(False, "the network's backtest errors are not finite")
    if persistence is None or not persistence > 0:
        return Decision(False, "persistence made no error in the backtest: the series is constant")
    return Decision(True, None)


def register(
    session: Session,
    settings: Settings,
    ticker: storage.Ticker,
    outcome: TrainingOutcome,
) -> tuple[storage.ModelVersion, Decision]:
    """Record the version with its artifact, promote it and prune old artifacts, in the
    caller's transaction.

    A training whose backtest has no usable figures raises ModelRejected before anything is
    written: no artifact, no row, and the current champion keeps serving.
    """
    backtest = finite(outcome.backtest)
    decision = decide(backtest)
    if not decision.promoted:
        raise ModelRejected(f"{ticker.symbol}: model not stored: {decision.reason}")
    artifact = artifacts.pack(outcome.bundle)  # before any row: a failure here writes nothing
    version = storage.next_version_number(session, ticker.id)

    current = storage.champion(session, ticker.id)
    choice = outcome.choice
    serving = outcome.serving
    row = storage.ModelVersion(
        ticker_id=ticker.id,
        version=version,
        status="champion",
        config=outcome.config,
        train_start=outcome.train_start,
        train_end=outcome.trained_through,
        trained_through=outcome.trained_through,
        test_start=date.fromisoformat(backtest["start"]),
        test_end=date.fromisoformat(backtest["end"]),
        n_train=outcome.n_train,
        train_seconds=outcome.train_seconds,
        # decide() let through only finite figures with persistence_mae > 0
        mae=float(backtest["mae"]),
        persistence_mae=float(backtest["persistence_mae"]),
        mae_ratio=float(backtest["mae_ratio"]),
        # at the last stored day: the served interval is scale x that day's EWMA volatility
        interval_halfwidth=float(serving["interval_scales"][backtest_key(choice.method)])
        * outcome.last_sigma,
        interval_coverage=float(outcome.bundle.coverage),
        metrics=finite({"backtest": backtest, "serving": serving}),
        method=choice.method,
        method_reason=choice.reason,
        promoted_at=storage.utcnow(),
    )
    if current is not None:
        current.status = "retired"
        session.flush()  # retire first: at most one champion per ticker at any moment
        render_again(session, ticker)  # the served document says its version is retired
    session.add(row)
    session.flush()
    artifacts.store(session, row, artifact, outcome.bundle)
    if outcome.record is not None:  # a full backtest: its forecasts replace the ticker's record
        backtest_record.store(session, ticker.id, row.id, outcome.record)
    artifacts.prune(session, ticker.id, settings.keep_versions)
    log.info(
        "model version registered",
        extra={
            "ticker": ticker.symbol,
            "version": version,
            "status": row.status,
            "method": row.method,
            "mae_ratio": backtest.get("mae_ratio"),
            "dm_pvalue": backtest.get("dm_best_pvalue"),
        },
    )
    return row, decision
