"""Fixtures of the forecaster tests: GOOG's sample prices and a tiny network trained on them,
once per test module (a module's own `prices` or `outcome` fixture takes precedence)."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest
from tinymodel import TINY

from forecaster.providers.sample import SampleProvider
from forecaster.training import TrainingOutcome, train


@pytest.fixture(scope="module")
def prices() -> pd.DataFrame:
    return SampleProvider().fetch("GOOG", date(2011, 1, 1), date(2013, 3, 1))


@pytest.fixture(scope="module")
def outcome(prices: pd.DataFrame) -> TrainingOutcome:
    return train(prices, TINY, "GOOG")
