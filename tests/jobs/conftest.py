"""Pipeline fixtures: tiny-model settings."""

from __future__ import annotations

from dataclasses import replace

import pytest

from forecaster.settings import Settings


@pytest.fixture
def pipeline_settings(settings: Settings) -> Settings:
    """Mechanics, not skill: tiny models, steps in the test's process."""
    return replace(settings, executor="inline", tickers=("^GSPC", "GOOG"))
