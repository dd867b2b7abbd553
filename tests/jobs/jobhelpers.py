"""Helpers for the pipeline tests: a sample provider over a short history, a pipeline run."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import pandas as pd

from forecaster import storage
from forecaster.providers.base import PriceProvider
from forecaster.providers.sample import SampleProvider
from forecaster.settings import Settings
from jobs import pipeline
from jobs.pipeline import RunReport

# Short real histories keep training in tests to about a second per ticker.
FIRST_DAY = {"^GSPC": date(2016, 6, 1), "GOOG": date(2011, 6, 1)}
LAST_DAY = {"^GSPC": date(2018, 12, 31), "GOOG": date(2013, 3, 1)}


class ShortSample:
    """The offline sample data from FIRST_DAY on, optionally only up to `until`."""

    name = "sample"
    adjusted = False

    def __init__(self, until: dict[str, date] | None = None) -> None:
        self.until = until or {}
        self.calls: list[tuple[str, date | None, date | None]] = []

    def fetch(self, ticker: str, start: date | None, end: date | None) -> pd.DataFrame:
        self.calls.append((ticker, start, end))
        first = FIRST_DAY.get(ticker)
        start = max(start, first) if start and first else (start or first)
        limit = self.until.get(ticker)
        if limit is not None:
            end = min(end, limit) if end else limit
        return SampleProvider().fetch(ticker, start, end)


def factory_of(provider: PriceProvider) -> Callable[[str, str | None], PriceProvider]:
    return lambda _symbol, _stored: provider


def run_pipeline(settings: Settings, *args: Any, **kwargs: Any) -> RunReport:
    """jobs.pipeline.run_pipeline on an engine of the settings' database, opened and disposed of
    here as an entry point does (a test that has one passes `engine=`)."""
    if "engine" in kwargs:
        return pipeline.run_pipeline(settings, *args, **kwargs)
    engine = storage.make_engine(
        settings.resolved_database_url, timeout=settings.db_timeout_seconds
    )
    try:
        return pipeline.run_pipeline(settings, *args, engine=engine, **kwargs)
    finally:
        engine.dispose()
