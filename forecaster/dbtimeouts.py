"""Deadlines on every database wait, enforced by the client, so a frozen server gives errors fast.

A PostgreSQL server that stops answering (SIGSTOP, a hung host, a dead network path behind a
live TCP connection) is never detected by the server-side `statement_timeout`, and TCP alone
waits for minutes. So the client bounds every wait itself:

- each connection attempt: `connect_timeout` (libpq and psycopg enforce at least 2 s);
- each answer the client waits for (a query, a commit, the pool's pre-ping): psycopg's wait
  timeout, through `DeadlineConnection.wait`. A wait past its deadline closes the connection
  (its protocol state is unknown) and raises `psycopg.OperationalError`; SQLAlchemy sees a closed
  connection, treats it as a disconnect and drops it from the pool;
- a caller may also set an overall deadline for a unit of work (`deadline(seconds)`, e.g. one
  API request): then every wait and connect inside it gets only the time left, so a request
  that pings, reconnects and queries still ends within its budget.

The server also gets `statement_timeout`, so a slow query on a healthy server is cancelled there.
SQLite has no server to freeze; its writers wait on locks for the busy timeout instead.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from functools import cache
from typing import Any

from sqlalchemy import Engine, event

_deadline: ContextVar[float | None] = ContextVar("stockcast_db_deadline", default=None)


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Bound every database wait inside the block by one overall budget of `seconds`."""
    token = start_deadline(seconds)
    try:
        yield
    finally:
        end_deadline(token)


def start_deadline(seconds: float) -> Token[float | None]:
    """`deadline` for frameworks that open and close the unit of work in separate hooks."""
    return _deadline.set(time.monotonic() + seconds)


def end_deadline(token: Token[float | None]) -> None:
    _deadline.reset(token)


def remaining(limit: float) -> float:
    """Seconds a wait may last now: `limit`, or less when an overall deadline is closer."""
    at = _deadline.get()
    if at is None:
        return limit
    return min(limit, at - time.monotonic())


@cache
def _connection_class() -> type[Any]:
    import psycopg
    from psycopg import errors

    class DatabaseDidNotAnswer(psycopg.OperationalError):
        """The database did not answer within the client-side deadline."""

    class DeadlineConnection(psycopg.Connection):
        """A psycopg connection whose every wait for the server has a deadline."""

        wait_timeout: float | None = None

        def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
            limit = self.wait_timeout
            if limit is None:
                return super().wait(gen, interval=interval, timeout=timeout)
            budget = remaining(limit)
            if timeout is not None:
                budget = min(budget, timeout)
            try:
                return super().wait(gen, interval=interval, timeout=max(budget, 0.0))
            except errors._WaitTimeout:
                if timeout is not None and timeout <= budget:
                    raise  # the caller's own timeout (psycopg internals): theirs to handle
                # Mid-protocol: the connection's state is unknown, so it is closed, never reused.
                with contextlib.suppress(Exception):  # a broken socket may fail to close
                    self.close()
                raise DatabaseDidNotAnswer(
                    f"the database did not answer within {limit:g}s"
                ) from None

    return DeadlineConnection


def install(engine: Engine, timeout: float) -> None:
    """Give a PostgreSQL (psycopg 3) engine connect, answer and statement deadlines."""
    if engine.dialect.name != "postgresql" or engine.dialect.driver != "psycopg":
        return
    import psycopg

    cls = _connection_class()
    statement_ms = int(timeout * 1000)

    @event.listens_for(engine, "do_connect")
    def _connect(_dialect: Any, _record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        budget = remaining(timeout)
        if budget <= 0:
            raise psycopg.OperationalError(f"the database did not answer within {timeout:g}s")
        # libpq counts connect_timeout in whole seconds, at least 2.
        cparams["connect_timeout"] = max(2, math.ceil(budget))
        options = cparams.get("options", "")
        # The server probes an idle client after 30 s and drops it after 3 unanswered probes
        # 10 s apart: a machine that vanished (power, network) releases its session locks
        # (forecaster.locks) in about a minute instead of the kernel's two hours.
        cparams["options"] = (
            f"{options} -c statement_timeout={statement_ms} -c tcp_keepalives_idle=30 "
            "-c tcp_keepalives_interval=10 -c tcp_keepalives_count=3"
        ).strip()
        conn = cls.connect(*cargs, **cparams)
        conn.wait_timeout = timeout
        return conn
