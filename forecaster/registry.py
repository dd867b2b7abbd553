"""Model versions: atomic artifacts on disk, metadata in the database, champion/challenger promotion.

A candidate becomes the champion only if (1) its walk-forward MAE is within
`persistence_tolerance` of the naive persistence baseline on its own test window and (2) it is no
worse (within `champion_tolerance`) than the current champion re-scored on that same window.
Otherwise it is stored as `rejected` with the reason. The artifact directory is written
atomically before any database row points at it, so the service can never load a half-written
model; the previous champion is only retired in the same transaction that promotes its successor.
"""

from __future__ import annotations

import logging
import re
import shutil
import uuid
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlalchemy.orm import Session

from forecaster import storage
from forecaster.errors import ModelArtifactError, NoChampion
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
    champion_mae_on_window: float | None


def _mae(report: Any, method: str) -> float:
    return float(report.metrics[method]["mae"])


def decide(
    settings: Settings,
    candidate_report: Any,
    champion_report: Any | None,
    champion_version: int | None,
) -> Decision:
    reasons = []
    ratio = float(candidate_report.mae_ratio)
    limit = 1.0 + settings.persistence_tolerance
    if not ratio <= limit:  # also catches NaN
        reasons.append(f"MAE is {ratio:.4f}x the persistence baseline (allowed <= {limit:.4f}x)")
    champion_mae = None
    if champion_report is not None:
        champion_mae = _mae(champion_report, "model")
        candidate_mae = _mae(candidate_report, "model")
        allowed = champion_mae * (1.0 + settings.champion_tolerance)
        if not candidate_mae <= allowed:
            reasons.append(
                f"MAE {candidate_mae:.4f} is worse than champion v{champion_version} "
                f"({champion_mae:.4f}) on the same evaluation window"
            )
    return Decision(not reasons, "; ".join(reasons) or None, champion_mae)


def register(
    session: Session,
    settings: Settings,
    ticker: storage.Ticker,
    outcome: TrainingOutcome,
    prices: pd.DataFrame,
) -> tuple[storage.ModelVersion, Decision]:
    """Save the artifact atomically, record the version and promote or reject it."""
    version = storage.next_version_number(session, ticker.id)
    path = artifact_dir(settings, ticker.symbol, version)
    outcome.bundle.save(path)  # atomic: a failure leaves nothing at `path`

    current = storage.champion(session, ticker.id)
    champion_report = None
    if current is not None:
        try:
            champion_report = load_bundle(current.artifact_path).evaluate(
                prices, outcome.test_start
            )
        except ModelArtifactError as exc:
            log.warning(
                "champion artifact unusable; candidate judged against persistence only",
                extra={"ticker": ticker.symbol, "champion": current.version, "error": str(exc)},
            )
    decision = decide(
        settings, outcome.evaluation, champion_report, current.version if current else None
    )
    report = outcome.evaluation
    metrics = report.to_dict()
    if decision.champion_mae_on_window is not None:
        metrics["champion_mae_on_window"] = decision.champion_mae_on_window
    row = storage.ModelVersion(
        ticker_id=ticker.id,
        version=version,
        status="champion" if decision.promoted else "rejected",
        rejection_reason=decision.reason,
        artifact_path=str(path),
        config=outcome.config,
        train_start=outcome.train_start,
        train_end=outcome.train_end,
        test_start=outcome.test_start,
        test_end=outcome.test_end,
        n_train=outcome.n_train,
        train_seconds=outcome.train_seconds,
        mae=_mae(report, "model"),
        persistence_mae=_mae(report, "persistence"),
        mae_ratio=float(report.mae_ratio),
        interval_halfwidth=float(outcome.bundle.interval_halfwidth),
        interval_coverage=float(outcome.bundle.coverage),
        metrics=metrics,
        promoted_at=storage.utcnow() if decision.promoted else None,
    )
    if decision.promoted and current is not None:
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
            "mae_ratio": round(row.mae_ratio, 4),
            "reason": decision.reason,
        },
    )
    return row, decision
