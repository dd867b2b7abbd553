"""The tracked universe (forecaster.universe): seeding from STOCKCAST_TICKERS, tracking and
untracking, purging, import files, on SQLite and PostgreSQL."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from forecaster import storage, universe
from forecaster.errors import ConfigError, UnknownTicker
from forecaster.providers.sample import SampleProvider
from forecaster.settings import Settings


def test_fresh_database_is_seeded_from_settings(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    seeded = settings.replace(tickers=("^GSPC", "goog", "GOOG"), default_provider="synthetic")
    with sessions.begin() as s:
        assert universe.tracked_universe(s, seeded) == ["^GSPC", "GOOG"]
        rows = {t.symbol: t for t in s.scalars(select(storage.Ticker))}
        assert {t.provider for t in rows.values()} == {"synthetic"}
        assert all(t.tracked for t in rows.values())
    with sessions.begin() as s:  # not fresh any more: nothing seeded twice
        assert universe.seed_from_settings(s, seeded) == []
        assert s.scalar(select(func.count()).select_from(storage.Ticker)) == 2


def test_once_tickers_exist_the_setting_is_ignored_and_said_once(
    settings: Settings,
    sessions: sessionmaker[Session],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(universe, "_ignored_setting_logged", False)
    with sessions.begin() as s:
        universe.track_ticker(s, "GOOG", "sample", None)
    configured = settings.replace(tickers=("^GSPC", "GOOG"))
    with caplog.at_level(logging.INFO, logger="forecaster.universe"):
        for _ in range(2):
            with sessions.begin() as s:
                assert universe.tracked_universe(s, configured) == ["GOOG"]
    ignored = [r for r in caplog.records if "STOCKCAST_TICKERS is ignored" in r.getMessage()]
    assert len(ignored) == 1


def test_no_reseeding_after_every_ticker_was_purged(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    """A database that has seen a pipeline run is not fresh, even with no ticker left."""
    with sessions.begin() as s:
        universe.tracked_universe(s, settings)
        s.add(storage.JobRun(kind="pipeline", trigger="cli", status="succeeded", tickers=[]))
    for symbol in settings.tickers:
        with sessions.begin() as s:
            universe.purge(s, symbol)
    with sessions.begin() as s:
        assert universe.tracked_universe(s, settings) == []


def test_removed_tickers_are_not_reseeded(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as s:
        universe.tracked_universe(s, settings)
        assert universe.untrack(s, list(settings.tickers)) == {"^GSPC": True, "GOOG": True}
    with sessions.begin() as s:
        assert universe.tracked_universe(s, settings) == []
        assert universe.untrack(s, ["GOOG"]) == {"GOOG": False}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"tickers": ("GOOG", "BAD$")}, "STOCKCAST_TICKERS: malformed ticker symbol 'BAD$'"),
        ({"default_provider": "nope"}, "STOCKCAST_PROVIDER: unknown provider 'nope'"),
    ],
)
def test_bad_seed_settings_are_config_errors(
    settings: Settings, sessions: sessionmaker[Session], changes: dict, message: str
) -> None:
    with sessions.begin() as s, pytest.raises(ConfigError, match=message.replace("$", r"\$")):
        # built in code, past validation: the seed checks them again
        universe.seed_from_settings(s, settings.model_copy(update=changes))


def test_track_backfills_and_an_unknown_symbol_leaves_nothing(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as s:
        result = universe.track_ticker(s, "goog", "sample", SampleProvider())
    assert result.status == "added" and result.backfill is not None
    assert result.backfill.inserted == 2148
    assert (
        result.describe()
    ) == "GOOG: added (sample), 2148 day(s) stored [2004-08-19 .. 2013-03-01]"
    with pytest.raises(UnknownTicker, match="AAPL"), sessions.begin() as s:
        universe.track_ticker(s, "AAPL", "sample", SampleProvider())
    with sessions.begin() as s:
        assert storage.get_ticker(s, "AAPL") is None
        assert universe.track_ticker(s, "GOOG", "sample", None).status == "already tracked"
        universe.untrack(s, ["GOOG"])
    with sessions.begin() as s:
        again = universe.track_ticker(s, "GOOG", "sample", SampleProvider())
        assert again.status == "tracked again" and again.backfill is not None
        assert again.backfill.inserted == 0  # incremental: the kept history is reused


def test_untrack_and_purge_refuse_unknown_tickers(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        universe.track_ticker(s, "GOOG", "sample", None)
    with pytest.raises(UnknownTicker, match="'NOPE, MSFT'"), sessions.begin() as s:
        universe.untrack(s, ["GOOG", "NOPE", "MSFT"])
    with sessions.begin() as s:
        ticker = storage.get_ticker(s, "GOOG")
        assert ticker is not None and ticker.tracked  # nothing changed


def test_parse_plain_symbol_file() -> None:
    text = "# my universe\nAAPL\n\n  msft  \nBAD$\nBRK-B\naapl\n^GSPC\nway-too-long-symbol-0123456789\n"
    parsed = universe.parse_symbol_file(text)
    assert parsed.symbols == [(2, "AAPL"), (4, "MSFT"), (6, "BRK-B"), (8, "^GSPC")]
    assert [(n, t) for n, t, _ in parsed.invalid] == [
        (5, "BAD$"),
        (9, "way-too-long-symbol-0123456789"),
    ]
    assert "malformed ticker symbol 'BAD$'" in parsed.invalid[0][2]
    assert parsed.duplicates == 1


def test_parse_csv_with_a_symbol_column() -> None:
    text = '\nName,Symbol,Sector\nApple,AAPL,Tech\n"Berkshire, Class B",BRK-B,Fin\nOops,,x\nX,EURUSD=X\n'
    parsed = universe.parse_symbol_file(text)
    assert parsed.symbols == [(3, "AAPL"), (4, "BRK-B"), (6, "EURUSD=X")]
    assert [(n, t) for n, t, _ in parsed.invalid] == [(5, "")]
    assert universe.parse_symbol_file("").symbols == []
