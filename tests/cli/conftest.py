"""CLI fixtures: a Click runner whose commands see the test database (the `env` fixture)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner


@pytest.fixture
def runner(env: dict[str, str]) -> CliRunner:
    return CliRunner()
