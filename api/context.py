"""What a request works with: the app's shared state (settings, engine, caches, metrics) and the
request's database session. Views import these from here, never from the `api` package, whose
factory imports the views."""

from __future__ import annotations

import logging
import os
import threading

from flask import current_app, g
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from api.cache import ResponseCache
from api.metrics import Metrics
from api.middleware import Replayed
from forecaster import storage
from forecaster.errors import DatabaseUnavailable, UnknownTicker
from forecaster.settings import Settings

log = logging.getLogger("stockcast.api")


class ApiState:
    """What every request needs, built once per app (one engine and pool per worker process)."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        # The latest forecast's one read (api/forecasts.py): a single SELECT needs no transaction,
        # and without one PostgreSQL is spared a BEGIN and a ROLLBACK round trip per request
        # (the same pool, so the same deadlines and pre-ping). SQLite's driver begins none for a
        # SELECT, and setting autocommit there costs a PRAGMA on every return to the pool.
        self.reader = (
            engine
            if engine.dialect.name == "sqlite"
            else engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        self.sessions: sessionmaker[Session] = storage.make_session_factory(engine)
        self.metrics = Metrics()
        self.responses: ResponseCache[Replayed] = ResponseCache(
            settings.api_response_ttl, size=lambda kept: len(kept.body)
        )
        self.generation = 0  # bumped when a replaced database file empties `responses`
        self.cache_control = f"public, max-age={settings.api_cache_max_age}"
        # SQLite: the file this worker opened. Deleted or replaced while serving, it must never
        # keep answering from the old file (its open descriptors would still read it).
        self.db_file = storage.sqlite_file(str(engine.url))
        self._db_identity = storage.file_identity(self.db_file) if self.db_file else None
        self._db_path = None if self.db_file is None else str(self.db_file)
        self._db_lock = threading.Lock()

    def check_database_file(self) -> None:
        """Raise DatabaseUnavailable if the SQLite file is gone; reconnect if it was replaced."""
        if self._db_path is None:
            return
        # Every request, so a deleted or replaced file is never served: one stat system call
        # (os.stat on a prepared string, not pathlib, which costs more than the call itself).
        try:
            st = os.stat(self._db_path)
        except OSError:
            raise DatabaseUnavailable("the database file is gone") from None
        identity = (st.st_dev, st.st_ino)
        if identity != self._db_identity:
            with self._db_lock:
                if identity != self._db_identity:
                    log.warning("database file replaced: reconnecting")
                    self.engine.dispose()  # pooled connections still read the old file
                    self.responses.clear()
                    self.generation += 1  # responses read from the old file are never kept
                    self._db_identity = identity


def state() -> ApiState:
    return current_app.extensions["stockcast"]


def db() -> Session:
    """The request's session: opened on first use, always closed in teardown."""
    if "db" not in g:
        g.db = state().sessions()
    return g.db


def ticker_or_404(symbol: str) -> storage.Ticker:
    """The ticker's row, or the API's 404 (unknown_ticker)."""
    row = storage.get_ticker(db(), symbol)
    if row is None:
        raise UnknownTicker(symbol, "not tracked by this service")
    return row
