"""Model artifacts in the database: packed and loaded with Keras' safe mode, committed with their
version row or not at all, cached by digest, pruned by retention, on SQLite and PostgreSQL."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from forecaster import artifacts, registry, storage
from forecaster.errors import ModelArtifactError
from forecaster.settings import Settings
from forecaster.training import TrainingOutcome

pytestmark = pytest.mark.slow


def test_pack_unpack_round_trip(outcome: TrainingOutcome, prices: pd.DataFrame) -> None:
    packed = artifacts.pack(outcome.bundle)
    assert packed.network[:2] == b"PK"  # a .keras file is a zip archive
    assert packed.meta["format"] == artifacts.FORMAT
    loaded = artifacts.unpack(packed)
    assert loaded.stats == outcome.bundle.stats
    assert loaded.predict_next(prices) == outcome.bundle.predict_next(prices)


def test_corrupt_or_foreign_artifacts_are_one_line_errors(outcome: TrainingOutcome) -> None:
    packed = artifacts.pack(outcome.bundle)
    with pytest.raises(ModelArtifactError, match=r"^cannot load v9: .* not a .keras archive$"):
        artifacts.unpack(artifacts.Artifact(b"not a zip file", packed.meta), "v9")
    damaged = packed.network[: len(packed.network) // 2] + bytes(len(packed.network) // 2)
    with pytest.raises(ModelArtifactError, match=r"^cannot load v9: ") as err:
        artifacts.unpack(artifacts.Artifact(damaged, packed.meta), "v9")
    assert "\n" not in str(err.value) and "/tmp" not in str(err.value)
    with pytest.raises(ModelArtifactError, match="unsupported artifact format 99"):
        artifacts.unpack(artifacts.Artifact(packed.network, {**packed.meta, "format": 99}))


def _ticker(sessions: sessionmaker[Session]) -> int:
    with sessions.begin() as s:
        return storage.get_or_create_ticker(s, "GOOG", "sample").id


def _counts(sessions: sessionmaker[Session]) -> tuple[int, int]:
    with sessions() as s:
        versions = s.scalar(select(func.count()).select_from(storage.ModelVersion))
        stored = s.scalar(select(func.count()).select_from(storage.ModelArtifact))
    return int(versions or 0), int(stored or 0)


def test_a_version_and_its_artifact_commit_together(
    outcome: TrainingOutcome,
    prices: pd.DataFrame,
    settings: Settings,
    sessions: sessionmaker[Session],
) -> None:
    ticker_id = _ticker(sessions)
    with sessions() as s:  # written, then rolled back: as a process killed before its commit
        registry.register(s, settings, s.get_one(storage.Ticker, ticker_id), outcome)
        assert s.scalar(select(func.count()).select_from(storage.ModelArtifact)) == 1
        s.rollback()
    assert _counts(sessions) == (0, 0)

    with sessions.begin() as s:
        registry.register(s, settings, s.get_one(storage.Ticker, ticker_id), outcome)
    assert _counts(sessions) == (1, 1)
    artifacts.clear_cache()  # a new worker process: everything comes from the database
    with sessions() as s:
        version, bundle = registry.load_champion(s, s.get_one(storage.Ticker, ticker_id))
        assert bundle.predict_next(prices) == outcome.bundle.predict_next(prices)
        assert registry.load_champion(s, version.ticker)[1] is bundle  # cached by digest
        stored = artifacts.read(s, version.id)
        assert stored is not None and stored.meta == artifacts.pack(outcome.bundle).meta
        assert artifacts.sizes(s, ticker_id) == {version.id: len(stored.network)}


def test_retention_keeps_the_champion_and_the_newest_versions(
    outcome: TrainingOutcome, settings: Settings, sessions: sessionmaker[Session]
) -> None:
    keep2 = settings.replace(keep_versions=2)
    ticker_id = _ticker(sessions)
    for _ in range(4):
        with sessions.begin() as s:
            registry.register(s, keep2, s.get_one(storage.Ticker, ticker_id), outcome)
    with sessions.begin() as s:
        versions = {v.version: v for v in storage.model_versions(s, ticker_id)}
        assert sorted(versions) == [1, 2, 3, 4]  # every version keeps its row and figures
        kept = {versions[n].id for n in (3, 4)}
        assert set(artifacts.sizes(s, ticker_id)) == kept
        with pytest.raises(ModelArtifactError, match=r"GOOG v1 is not stored \(pruned"):
            artifacts.load(s, versions[1])
        # a champion older than the newest `keep` (an operator's rollback) keeps its artifact
        versions[4].status = "retired"
        s.flush()
        versions[3].status = "champion"
        s.flush()
        assert artifacts.prune(s, ticker_id, 1) == 0  # v4 is the newest, v3 the champion
        versions[3].status = "retired"
        s.flush()
        assert artifacts.prune(s, ticker_id, 1) == 1  # v3 is neither any more
        assert set(artifacts.sizes(s, ticker_id)) == {versions[4].id}
