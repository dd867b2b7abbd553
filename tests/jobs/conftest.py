"""Pipeline fixtures: lenient tiny-model settings."""

from __future__ import annotations

from dataclasses import replace

import pytest

from forecaster.settings import Settings


@pytest.fixture
def pipeline_settings(settings: Settings) -> Settings:
    """Mechanics, not skill: a 3-epoch model must not be rejected for losing to persistence."""
    return replace(
        settings, persistence_tolerance=10.0, pipeline_isolation="inline", tickers=("^GSPC", "GOOG")
    )
