"""Named locks shared by every process on one database: one pipeline step per ticker at a time.

- PostgreSQL: a session-level advisory lock (`pg_try_advisory_lock`) held on a dedicated
  connection. The server releases it by itself when that connection ends, so a killed process
  never leaves a stale lock.
- SQLite (one file, one host): a row in `locks` with an expiry. The holder refreshes it
  (`refresh`); a row past its expiry, or owned by a dead process on this host, is taken over.

Acquisition never waits: a busy lock raises LockBusy at once, and the caller decides whether to
skip the work (the pipeline) or report it (the CLI).
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Connection, Engine, delete, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from forecaster import storage
from forecaster.errors import LockBusy
from forecaster.processes import process_gone

log = logging.getLogger(__name__)

DEFAULT_TTL_SECONDS = 120


def owner_id() -> str:
    """host:pid:random, unique per acquisition site; the host and pid let others spot dead owners."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_is_dead(owner: str) -> bool:
    """True only when the owner (host:pid:...) ran on this host and its process is gone."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    return pid_text.isdigit() and process_gone(host, int(pid_text))


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for pg_advisory_lock from the lock's name."""
    digest = hashlib.blake2b(f"stockcast:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@dataclass
class HeldLock:
    name: str
    owner: str
    engine: Engine
    ttl_seconds: int
    connection: Connection | None = None  # PostgreSQL: the connection holding the advisory lock

    def refresh(self) -> bool:
        """Extend a row lock's expiry; False if it was lost (taken over after expiring)."""
        if self.connection is not None:
            return not self.connection.closed
        with self.engine.begin() as conn:
            result = conn.execute(
                update(storage.Lock)
                .where(storage.Lock.name == self.name, storage.Lock.owner == self.owner)
                .values(expires_at=storage.utcnow() + timedelta(seconds=self.ttl_seconds))
            )
        return result.rowcount == 1

    def release(self) -> None:
        if self.connection is not None:
            conn, self.connection = self.connection, None
            try:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": advisory_key(self.name)})
                conn.commit()
                conn.close()
            except Exception:
                # Never hand a connection that may still hold the lock back to the pool.
                conn.invalidate()
                conn.close()
                log.warning("advisory unlock failed; connection discarded", exc_info=True)
            return
        with self.engine.begin() as conn:
            conn.execute(
                delete(storage.Lock).where(
                    storage.Lock.name == self.name, storage.Lock.owner == self.owner
                )
            )


def acquire(
    engine: Engine, name: str, owner: str | None = None, ttl_seconds: int = DEFAULT_TTL_SECONDS
) -> HeldLock:
    """Take the lock now or raise LockBusy."""
    owner = owner or owner_id()
    if engine.dialect.name == "postgresql":
        conn = engine.connect()
        try:
            got = conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": advisory_key(name)})
            conn.commit()  # the lock is session-level: it outlives this transaction
        except BaseException:
            conn.invalidate()
            conn.close()
            raise
        if not got:
            conn.close()
            raise LockBusy(name)
        return HeldLock(name, owner, engine, ttl_seconds, connection=conn)
    return _acquire_row(engine, name, owner, ttl_seconds)


def _acquire_row(engine: Engine, name: str, owner: str, ttl_seconds: int) -> HeldLock:
    now = storage.utcnow()
    L = storage.Lock
    try:
        with engine.begin() as conn:
            current = conn.execute(select(L.owner, L.expires_at).where(L.name == name)).first()
            if current is not None:
                expires = storage.as_utc(current.expires_at)
                if expires >= now and not owner_is_dead(current.owner):
                    raise LockBusy(name, current.owner)
                log.warning(
                    "taking over a stale lock",
                    extra={"lock": name, "previous_owner": current.owner},
                )
                conn.execute(delete(L).where(L.name == name, L.owner == current.owner))
            conn.execute(
                insert(L).values(
                    name=name,
                    owner=owner,
                    acquired_at=now,
                    expires_at=now + timedelta(seconds=ttl_seconds),
                )
            )
    except IntegrityError as exc:  # another process inserted it between our read and write
        raise LockBusy(name) from exc
    return HeldLock(name, owner, engine, ttl_seconds)


class KeepFresh:
    """Refreshes a row lock from a background thread while the block runs (PostgreSQL advisory
    locks need nothing: the server holds them as long as their connection lives)."""

    def __init__(self, lock: HeldLock) -> None:
        self._lock = lock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> HeldLock:
        if self._lock.connection is None:
            self._thread = threading.Thread(
                target=self._loop, name="stockcast-lock-refresh", daemon=True
            )
            self._thread.start()
        return self._lock

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(max(1.0, self._lock.ttl_seconds / 4)):
            try:
                if not self._lock.refresh():
                    log.error("lost a lock while holding it", extra={"lock": self._lock.name})
            except Exception:  # a database blip must not end the refreshing
                log.warning("lock refresh failed", exc_info=True)


@contextmanager
def hold(
    engine: Engine, name: str, owner: str | None = None, ttl_seconds: int = DEFAULT_TTL_SECONDS
) -> Iterator[HeldLock]:
    lock = acquire(engine, name, owner, ttl_seconds)
    try:
        yield lock
    finally:
        lock.release()


def release_dead(engine: Engine) -> int:
    """Delete the lock rows of processes on this host that no longer exist (a worker killed
    mid-step cannot release its own); the number deleted. PostgreSQL needs nothing: the server
    ended a dead process's advisory locks with its connection."""
    if engine.dialect.name == "postgresql":
        return 0
    L = storage.Lock
    with engine.begin() as conn:
        dead = [owner for owner in conn.scalars(select(L.owner)) if owner_is_dead(owner)]
        if dead:
            conn.execute(delete(L).where(L.owner.in_(dead)))
    return len(dead)


def ticker_lock_name(symbol: str) -> str:
    """The lock every writer of a ticker's models and forecasts takes (pipeline and CLI alike)."""
    return f"ticker:{symbol}"
