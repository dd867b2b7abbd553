"""The tracked universe: which tickers the pipeline processes, kept in the database.

`tickers.tracked` marks a ticker the nightly run refreshes; `tickers.provider` says where its
prices come from. STOCKCAST_TICKERS (settings.tickers) only seeds a fresh database; afterwards
`stockcast tickers add / remove / import` change the universe.

Use cases: callers own the session and its transaction (forecaster.service's convention).
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy.orm import Session

from forecaster import storage
from forecaster.errors import (
    ConfigError,
    InvalidTicker,
    StockcastError,
    UnknownProvider,
    UnknownTicker,
)
from forecaster.ingest import BackfillResult, backfill_ticker
from forecaster.providers import PROVIDERS
from forecaster.providers.base import PriceProvider, normalize_ticker
from forecaster.settings import Settings

log = logging.getLogger(__name__)

_ignored_setting_logged = False  # "STOCKCAST_TICKERS is ignored" is said once per process


# --------------------------------------------------------------------------- seeding


def seed_from_settings(session: Session, settings: Settings) -> list[str]:
    """On a fresh database (no ticker ever stored, no pipeline run recorded) register
    settings.tickers as tracked with the default provider; elsewhere do nothing.

    Safe when two processes seed at once (the insert ignores a symbol that already exists).
    """
    if not storage.is_fresh(session):
        return []
    try:
        provider = check_provider_name(settings.default_provider)
    except UnknownProvider as exc:
        raise ConfigError(f"STOCKCAST_PROVIDER: {exc}") from exc
    try:
        symbols = list(dict.fromkeys(normalize_ticker(t) for t in settings.tickers))
    except InvalidTicker as exc:
        raise ConfigError(f"STOCKCAST_TICKERS: {exc}") from exc
    for symbol in symbols:
        storage.get_or_create_ticker(session, symbol, provider)
    log.info(
        "seeded the tracked tickers from STOCKCAST_TICKERS",
        extra={"tickers": symbols, "provider": provider},
    )
    return symbols


def tracked_universe(session: Session, settings: Settings) -> list[str]:
    """What a pipeline run without explicit tickers processes: every tracked ticker, by symbol.

    Seeds a fresh database first. Once the database holds tickers STOCKCAST_TICKERS is ignored;
    when it differs from the tracked set that is logged (once per process).
    """
    seeded = seed_from_settings(session, settings)
    symbols = storage.tracked_symbols(session)
    global _ignored_setting_logged
    configured = {t.strip().upper() for t in settings.tickers}
    if not seeded and not _ignored_setting_logged and configured != set(symbols):
        _ignored_setting_logged = True
        log.info(
            "STOCKCAST_TICKERS is ignored: the database already holds the tracked tickers "
            "(manage them with `stockcast tickers add/remove/import`)",
            extra={"configured": sorted(configured), "tracked": len(symbols)},
        )
    return symbols


# --------------------------------------------------------------------------- add / remove


def check_provider_name(name: str) -> str:
    """A provider name to record for a ticker (checked before anything is written)."""
    if name not in PROVIDERS:
        raise UnknownProvider(name, list(PROVIDERS))
    return name


@dataclass
class TrackResult:
    symbol: str
    status: str  # added | tracked again | already tracked
    provider: str
    backfill: BackfillResult | None = None

    def describe(self) -> str:
        line = f"{self.symbol}: {self.status} ({self.provider})"
        b = self.backfill
        if b is not None:
            span = f"{b.first_date} .. {b.last_date}" if b.last_date else "no data"
            line += f", {b.inserted} day(s) stored [{span}]"
            if b.rejected:
                line += f", {b.rejected} rejected"
        return line


def track_ticker(
    session: Session,
    symbol: str,
    provider: str,
    source: PriceProvider | None,
    *,
    start: date | None = None,
) -> TrackResult:
    """Register `symbol` as tracked with `provider`, and backfill it from `source` (None: no
    backfill; the next pipeline run fetches its history).

    All in the caller's transaction: when the backfill fails (unknown symbol, provider error)
    the caller's rollback leaves no trace of the ticker. An already tracked ticker is left as is.
    """
    symbol = normalize_ticker(symbol)
    row = storage.get_ticker(session, symbol)
    if row is not None and row.tracked:
        return TrackResult(symbol, "already tracked", row.provider)
    status = "added" if row is None else "tracked again"
    result = TrackResult(symbol, status, provider)
    if source is not None:
        # Creates the row on success, raises UnknownTicker when the provider knows no such symbol.
        result.backfill = backfill_ticker(session, source, symbol, start, None)
    row = storage.get_or_create_ticker(session, symbol, provider)
    row.provider, row.tracked = provider, True
    session.flush()
    log.info("ticker tracked", extra={"ticker": symbol, "provider": provider, "status": status})
    return result


def untrack(session: Session, symbols: list[str]) -> dict[str, bool]:
    """Stop tracking `symbols` (their data stays); every one must exist or nothing changes.

    Maps each symbol to whether it was tracked until now.
    """
    rows = require_all(session, symbols)
    was_tracked = {r.symbol: r.tracked for r in rows}
    storage.set_tracked(session, list(was_tracked), False)
    log.info("tickers no longer tracked", extra={"tickers": list(was_tracked)})
    return was_tracked


def require_all(session: Session, symbols: list[str]) -> list[storage.Ticker]:
    normalized = list(dict.fromkeys(normalize_ticker(s) for s in symbols))
    rows = {s: storage.get_ticker(session, s) for s in normalized}
    missing = [s for s, row in rows.items() if row is None]
    if missing:
        raise UnknownTicker(", ".join(missing), "not in the database; nothing was changed")
    return [row for row in rows.values() if row is not None]


def purge(session: Session, symbol: str) -> storage.PurgeCounts:
    """Delete the ticker with its prices, forecasts, model versions and their artifacts in the
    caller's transaction (the caller holds the ticker's lock)."""
    (row,) = require_all(session, [symbol])
    counts = storage.purge_ticker(session, row)
    log.warning("ticker purged", extra={"ticker": symbol, "prices": counts.prices})
    return counts


# --------------------------------------------------------------------------- import files


@dataclass
class SymbolFile:
    """What an import file holds: (line number, symbol) in file order, first occurrence only,
    and the lines that are not a valid symbol as (line number, text, reason)."""

    symbols: list[tuple[int, str]] = field(default_factory=list)
    invalid: list[tuple[int, str, str]] = field(default_factory=list)
    duplicates: int = 0


def parse_symbol_file(text: str) -> SymbolFile:
    """One symbol per line (blank lines and `#` comments skipped), or a CSV whose header has a
    `symbol` column (any other columns ignored). Symbols are checked with the ticker rule."""
    out = SymbolFile()
    seen: set[str] = set()
    lines = text.splitlines()
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    entries: list[tuple[int, str]]
    if first is not None and "symbol" in _header(lines[first]):
        column = _header(lines[first]).index("symbol")
        reader = csv.reader(io.StringIO("\n".join(lines[first + 1 :])))
        entries = []
        for record in reader:
            number = first + 1 + reader.line_num
            if not any(cell.strip() for cell in record):
                continue
            entries.append((number, record[column] if column < len(record) else ""))
    else:
        entries = [
            (number, line)
            for number, line in enumerate(lines, start=1)
            if line.strip() and not line.lstrip().startswith("#")
        ]
    for number, raw in entries:
        try:
            symbol = normalize_ticker(raw)
        except StockcastError as exc:
            out.invalid.append((number, raw.strip()[:40], str(exc)))
            continue
        if symbol in seen:
            out.duplicates += 1
            continue
        seen.add(symbol)
        out.symbols.append((number, symbol))
    return out


def _header(line: str) -> list[str]:
    return [cell.strip().lower() for cell in next(csv.reader([line]), [])]
