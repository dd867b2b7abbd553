"""Engines and sessions: SQLite pragmas, PostgreSQL deadlines (forecaster.dbtimeouts), and what
the callers need to know about a database that refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    create_engine,
    event,
    text,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import (
    Session,
    sessionmaker,
)

from forecaster import dbtimeouts


def db_error_summary(exc: DBAPIError) -> str:
    """One line saying why the database refused: the driver's first line, never empty."""
    message = str(exc.orig if exc.orig is not None else exc).strip()
    return message.splitlines()[0] if message else type(exc).__name__


def make_engine(url: str, *, timeout: float | None = 2.0, **kwargs: Any) -> Engine:
    """Create an engine; SQLite gets foreign keys, WAL and a busy timeout so readers never block.

    On PostgreSQL, `timeout` bounds every connect and every wait for an answer on the client side
    and sets statement_timeout (forecaster.dbtimeouts); None (migrations) waits as long as it takes.
    """
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {"timeout": 30})
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    engine = create_engine(url, **kwargs)
    if timeout is not None:
        dbtimeouts.install(engine, timeout)
    return engine


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL (None for other databases and in-memory SQLite)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def file_identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of a file, or None when it does not exist: a replaced file changes it."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def ensure_sqlite_dir(url: str) -> None:
    """Create the directory of a SQLite file URL (the embedded default lives in data_dir)."""
    from pathlib import Path

    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def ping(connection: Connection) -> None:
    """One round trip: raises if the database does not answer."""
    connection.execute(text("SELECT 1"))
