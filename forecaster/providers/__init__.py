"""Market-data providers behind one interface; `get_provider` picks one by name."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from forecaster.errors import ConfigError, UnknownProvider
from forecaster.providers.base import PROVIDERS, PriceProvider

if TYPE_CHECKING:  # settings reads PROVIDERS from providers.base: no import at run time
    from forecaster.settings import Settings


def get_provider(
    name: str, settings: Settings, csv_path: Path | str | None = None
) -> PriceProvider:
    if name == "sample":
        from forecaster.providers.sample import SampleProvider

        return SampleProvider()
    if name == "synthetic":
        from forecaster.providers.synthetic import SyntheticProvider

        return SyntheticProvider()
    if name == "yfinance":
        from forecaster.providers.yfinance import YFinanceProvider

        return YFinanceProvider.from_settings(settings)
    if name == "csv":
        from forecaster.providers.csv import CsvProvider

        if csv_path is None:
            raise ConfigError("the csv provider needs a file or directory (--csv PATH)")
        return CsvProvider(csv_path)
    raise UnknownProvider(name, list(PROVIDERS))


def provider_for(settings: Settings, stored_provider: str | None) -> PriceProvider | None:
    """Where a ticker's new prices come from: the provider it was backfilled with, else the default.

    A CSV ticker has nothing to poll (its data arrives through `stockcast backfill --provider
    csv`), so it is retrained on what is stored.
    """
    name = stored_provider or settings.default_provider
    if name == "csv":
        return None
    return get_provider(name, settings)


__all__ = ["PROVIDERS", "PriceProvider", "get_provider", "provider_for"]
