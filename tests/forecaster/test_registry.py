"""Promotion rules, the one-champion invariant, and crash safety of the model registry."""

from __future__ import annotations

import re
from typing import Any

import pytest

from forecaster.registry import artifact_dir, decide
from forecaster.settings import Settings


def backtest(mae: float, persistence: float, n: int = 500) -> dict[str, Any]:
    return {"mae": mae, "persistence_mae": persistence, "n_forecasts": n}


def test_a_version_with_usable_backtest_figures_is_promoted() -> None:
    # Even one that loses to persistence: it is the freshest, and the serving rule
    # (forecaster.policy) decides whether its network or a baseline produces forecasts.
    for figures in (backtest(10.0, 10.1), backtest(12.0, 10.0)):
        d = decide(figures)
        assert d.promoted and d.reason is None


@pytest.mark.parametrize(
    ("figures", "why"),
    [
        (backtest(float("nan"), 10.0), "not finite"),
        (backtest(float("inf"), 10.0), "not finite"),
        (backtest(1.0, 0.0), "constant"),
        (backtest(1.0, 1.0, n=0), "no forecasts"),
    ],
)
def test_unusable_backtests_are_rejected_with_reason(figures: dict[str, Any], why: str) -> None:
    d = decide(figures)
    assert not d.promoted and why in (d.reason or "")


def test_artifact_dir_is_filesystem_safe(tmp_path: Any) -> None:
    settings = Settings().replace(data_dir=tmp_path)
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

    settings = Settings().replace(data_dir=tmp_path)
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


def test_a_training_without_usable_figures_stores_nothing(tmp_path: Any) -> None:
    from types import SimpleNamespace

    from forecaster.errors import ModelRejected
    from forecaster.registry import register

    settings = Settings().replace(data_dir=tmp_path)
    outcome = SimpleNamespace(
        backtest={"mae": float("nan"), "persistence_mae": 1.0, "n_forecasts": 9}
    )
    with pytest.raises(ModelRejected, match=r"GOOG: model not stored: .*not finite"):
        register(None, settings, SimpleNamespace(id=1, symbol="GOOG"), outcome)  # type: ignore[arg-type]
    assert not (tmp_path / "models").exists()  # no artifact either
