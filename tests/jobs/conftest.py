"""Pipeline fixtures: tiny-model settings."""

from __future__ import annotations

import pytest

from forecaster.settings import Settings


@pytest.fixture
def pipeline_settings(settings: Settings) -> Settings:
    """Mechanics, not skill: tiny models, steps in the test's process."""
    return settings.replace(executor="inline", tickers=("^GSPC", "GOOG"))
