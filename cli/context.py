"""The object every command receives: settings plus a lazily created engine and session factory."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date

import click
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from forecaster import migrate, storage, universe
from forecaster.errors import DatabaseUnavailable, InvalidDateRange
from forecaster.providers.base import normalize_ticker
from forecaster.settings import Settings


@dataclass
class AppContext:
    settings: Settings
    _engine: Engine | None = field(default=None, repr=False)
    _sessions: sessionmaker[Session] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return self.settings.resolved_database_url

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            storage.ensure_sqlite_dir(self.url)
            self._engine = storage.make_engine(self.url, timeout=self.settings.db_timeout_seconds)
        return self._engine

    def check_schema(self) -> None:
        from sqlalchemy.exc import OperationalError

        try:
            at_head = migrate.is_at_head(self.engine)
        except OperationalError as exc:
            raise DatabaseUnavailable(
                f"database unreachable: {storage.db_error_summary(exc)}"
            ) from exc
        if not at_head:
            raise click.ClickException(
                "the database schema is not at the latest migration; run `stockcast db upgrade`"
            )

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work: commit on success, roll back on any error."""
        if self._sessions is None:
            self.check_schema()
            self._sessions = storage.make_session_factory(self.engine)
        with self._sessions.begin() as session:
            yield session

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


pass_app = click.make_pass_decorator(AppContext)


def parse_day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise InvalidDateRange(f"{option} must be a date like 2018-12-31, got {value!r}") from exc


def resolve_tickers(app: AppContext, tickers: tuple[str, ...]) -> list[str]:
    """Validate every symbol before any work; no symbols means every tracked ticker in the
    database (a fresh database is seeded from STOCKCAST_TICKERS first)."""
    if tickers:
        return [normalize_ticker(t) for t in tickers]
    with app.transaction() as session:
        symbols = universe.tracked_universe(session, app.settings)
    if not symbols:
        raise click.ClickException("no tracked tickers; add some with `stockcast tickers add`")
    return symbols
