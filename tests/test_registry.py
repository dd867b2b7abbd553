"""Promotion rules, the one-champion invariant, and crash safety of the model registry."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

import pytest

from forecaster.registry import artifact_dir, decide
from forecaster.settings import Settings


@dataclass
class Report:
    model_mae: float
    persistence_mae: float

    @property
    def mae_ratio(self) -> float:
        return self.model_mae / self.persistence_mae

    @property
    def metrics(self) -> dict[str, Any]:
        return {"model": {"mae": self.model_mae}, "persistence": {"mae": self.persistence_mae}}


SETTINGS = replace(Settings(), persistence_tolerance=0.02, champion_tolerance=0.0)


def test_first_model_no_worse_than_persistence_is_promoted() -> None:
    d = decide(SETTINGS, Report(10.0, 10.1), None, None)
    assert d.promoted and d.reason is None


def test_within_persistence_tolerance_is_promoted() -> None:
    assert decide(SETTINGS, Report(10.15, 10.0), None, None).promoted


def test_worse_than_persistence_is_rejected_with_reason() -> None:
    d = decide(SETTINGS, Report(10.5, 10.0), None, None)
    assert not d.promoted
    assert "1.0500x the persistence baseline" in (d.reason or "")


def test_worse_than_champion_on_same_window_is_rejected() -> None:
    d = decide(SETTINGS, Report(9.9, 10.0), Report(9.8, 10.0), 3)
    assert not d.promoted
    assert "worse than champion v3" in (d.reason or "")
    assert d.champion_mae_on_window == pytest.approx(9.8)


def test_equal_to_champion_is_promoted() -> None:
    assert decide(SETTINGS, Report(9.8, 10.0), Report(9.8, 10.0), 3).promoted


def test_nan_metrics_are_rejected() -> None:
    assert not decide(SETTINGS, Report(float("nan"), 10.0), None, None).promoted


def test_artifact_dir_is_filesystem_safe(tmp_path: Any) -> None:
    settings = replace(Settings(), data_dir=tmp_path)
    path = artifact_dir(settings, "^GSPC", 12)
    assert path.parent == (tmp_path / "models" / "_GSPC").resolve()
    assert re.fullmatch(r"v0012-[0-9a-f]{8}", path.name)
    # every attempt gets its own directory: an orphan of a killed attempt never blocks the next
    assert artifact_dir(settings, "^GSPC", 12) != path


def test_remove_orphans_only_touches_unreferenced_artifacts(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows are matched by directory name (a volume may be mounted elsewhere on another host),
    and nothing that does not look like an artifact is ever deleted."""
    from types import SimpleNamespace

    from forecaster import registry

    settings = replace(Settings(), data_dir=tmp_path)
    root = registry.ticker_models_dir(settings, "GOOG")
    live = registry.artifact_dir(settings, "GOOG", 1)
    orphan = registry.artifact_dir(settings, "GOOG", 2)
    temp = root / f".{orphan.name}.tmp-0123abcd"
    user_dir = root / "notes"
    for d in (live, orphan, temp, user_dir):
        d.mkdir(parents=True)
    row = SimpleNamespace(artifact_path=f"/mnt/elsewhere/models/GOOG/{live.name}")
    monkeypatch.setattr(registry.storage, "model_versions", lambda _session, _tid: [row])
    removed = registry.remove_orphans(None, settings, SimpleNamespace(id=1, symbol="GOOG"))  # type: ignore[arg-type]
    assert sorted(p.name for p in removed) == sorted([orphan.name, temp.name])
    assert sorted(p.name for p in root.iterdir()) == sorted([live.name, "notes"])
