"""Model versions: atomic artifacts on disk, metadata in the database, one champion per ticker.

Each training produces a version whose served network was refit on every stored day and whose
skill was measured by a rolling-origin backtest (forecaster.training). The newest successfully
trained version becomes the champion, because it is the freshest: whether its network or a
simple baseline produces the forecasts is its `method`, chosen by forecaster.policy from the
backtest, so a network without measured skill is kept (its figures stay visible) but never
serves. A version is rejected only when its backtest produced no usable figures.

The artifact directory is written atomically before any database row points at it, so the
service can never load a half-written model; the previous champion is only retired in the same
transaction that promotes its successor.
"""

from __future__ import annotations

import logging
import math
import re
import shutil
import uuid
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from forecaster import storage
from forecaster.errors import ModelArtifactError, ModelRejected, NoChampion
from forecaster.evaluation import finite
from forecaster.policy import backtest_key
from forecaster.settings import Settings

if TYPE_CHECKING:
    from forecaster.model import ForecastBundle
    from forecaster.training import TrainingOutcome

log = logging.getLogger(__name__)


def ticker_models_dir(settings: Settings, symbol: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9.=-]", "_", symbol)
    return (settings.resolved_models_dir / safe).resolve()


# What save() writes: v0007-1a2b3c4d, and its temporary sibling .v0007-1a2b3c4d.tmp-5e6f7a8b.
_ARTIFACT_NAME = re.compile(r"v\d{4,}-[0-9a-f]{8}")
_TEMP_NAME = re.compile(r"\.v\d{4,}-[0-9a-f]{8}\.tmp-[0-9a-f]{8}")


def artifact_dir(settings: Settings, symbol: str, version: int) -> Path:
    """A fresh directory name per attempt: a process killed after saving but before committing
    leaves an orphan that can never collide with the next attempt at the same version number."""
    return ticker_models_dir(settings, symbol) / f"v{version:04d}-{uuid.uuid4().hex[:8]}"


def remove_orphans(session: Session, settings: Settings, ticker: storage.Ticker) -> list[Path]:
    """Delete artifact directories of `ticker` that no model version points at.

    They are left by processes killed between saving an artifact and committing its row (or by
    a failed temporary write). Call only while holding the ticker's lock: then no other process
    can be between those two steps for this ticker.
    """
    root = ticker_models_dir(settings, ticker.symbol)
    if not root.is_dir():
        return []
    # Compare directory names, not absolute paths: names are unique per attempt, and a volume
    # mounted at another path on another host must never make live artifacts look orphaned.
    referenced = {Path(v.artifact_path).name for v in storage.model_versions(session, ticker.id)}
    removed = []
    for child in sorted(root.iterdir()):
        ours = _ARTIFACT_NAME.fullmatch(child.name) or _TEMP_NAME.fullmatch(child.name)
        if child.is_dir() and ours and child.name not in referenced:
            shutil.rmtree(child, ignore_errors=True)
            removed.append(child)
    if removed:
        log.warning(
            "removed orphaned model artifacts",
            extra={"ticker": ticker.symbol, "paths": [p.name for p in removed]},
        )
    return removed


@lru_cache(maxsize=32)
def _load_cached(path: str, mtime_ns: int) -> ForecastBundle:
    from forecaster.model import ForecastBundle

    return ForecastBundle.load(Path(path))


def load_bundle(path: str | Path) -> ForecastBundle:
    """Load an artifact once per process (keyed by path and modification time)."""
    p = Path(path)
    try:
        mtime = p.stat().st_mtime_ns
    except OSError as exc:
        raise ModelArtifactError(f"model artifact {p} is missing") from exc
    return _load_cached(str(p), mtime)


def load_champion(
    session: Session, ticker: storage.Ticker
) -> tuple[storage.ModelVersion, ForecastBundle]:
    row = storage.champion(session, ticker.id)
    if row is None:
        raise NoChampion(ticker.symbol)
    return row, load_bundle(row.artifact_path)


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
    """Save the artifact atomically, record the version and promote it.

    A training whose backtest has no usable figures raises ModelRejected before anything is
    written: no artifact, no row, and the current champion keeps serving.
    """
    backtest = finite(outcome.backtest)
    decision = decide(backtest)
    if not decision.promoted:
        raise ModelRejected(f"{ticker.symbol}: model not stored: {decision.reason}")
    version = storage.next_version_number(session, ticker.id)
    path = artifact_dir(settings, ticker.symbol, version)
    outcome.bundle.save(path)  # atomic: a failure leaves nothing at `path`

    current = storage.champion(session, ticker.id)
    choice = outcome.choice
    serving = outcome.serving
    row = storage.ModelVersion(
        ticker_id=ticker.id,
        version=version,
        status="champion",
        artifact_path=str(path),
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
    session.add(row)
    session.flush()
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
