"""The tiny network settings of the model and artifact tests (their fixtures `prices` and
`outcome`, trained once per module, are in tests/forecaster/conftest.py)."""

from __future__ import annotations

from forecaster.params import ModelParams
from forecaster.settings import Settings

TINY = Settings().replace(
    model_scope="ticker",  # one ticker's own network (forecaster.training.train)
    model=ModelParams(units=(8, 4), epochs=3, batch_size=32, patience=2),
    backtest_days=260,  # two folds of 130 forecasts
    backtest_refit_every=130,
)
