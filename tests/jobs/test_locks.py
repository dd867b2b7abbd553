"""Per-ticker locks on SQLite (lock rows) and PostgreSQL (advisory locks)."""

from __future__ import annotations

import socket
import subprocess
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select, update

from forecaster import locks, storage
from forecaster.errors import LockBusy


@pytest.fixture
def other_engine(engine: Engine) -> Engine:
    """A second engine on the same database: what another process would have."""
    eng = storage.make_engine(engine.url.render_as_string(hide_password=False))
    yield eng
    eng.dispose()


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_second_holder_is_refused_until_release(engine: Engine, other_engine: Engine) -> None:
    first = locks.acquire(engine, "ticker:GOOG")
    with pytest.raises(LockBusy, match="'ticker:GOOG' is held by another run"):
        locks.acquire(other_engine, "ticker:GOOG")
    locks.acquire(other_engine, "ticker:^GSPC").release()  # other names are independent
    first.release()
    with locks.hold(other_engine, "ticker:GOOG") as again:
        assert again.refresh()
        with pytest.raises(LockBusy):
            locks.acquire(engine, "ticker:GOOG")


def test_lock_of_a_dead_holder_is_free(engine: Engine, other_engine: Engine) -> None:
    """A killed process never leaves a lock behind: PostgreSQL drops the advisory lock with the
    connection; on SQLite the row of a dead pid on this host is taken over."""
    held = locks.acquire(engine, "ticker:GOOG", owner=f"{socket.gethostname()}:{dead_pid()}:x")
    if held.connection is not None:
        held.connection.invalidate()  # the server sees the session end, as when a process dies
        held.connection = None
    lock = locks.acquire(other_engine, "ticker:GOOG")
    lock.release()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_sqlite_expired_lock_is_taken_over(engine: Engine, other_engine: Engine) -> None:
    stale = locks.acquire(engine, "ticker:GOOG", owner="elsewhere:1:x", ttl_seconds=60)
    with pytest.raises(LockBusy, match="elsewhere:1:x"):  # another host: only expiry frees it
        locks.acquire(other_engine, "ticker:GOOG")
    with engine.begin() as conn:
        conn.execute(
            update(storage.Lock).values(expires_at=storage.utcnow() - timedelta(seconds=1))
        )
    fresh = locks.acquire(other_engine, "ticker:GOOG")
    assert not stale.refresh()  # the old holder learns it lost the lock
    stale.release()  # and its release does not free the new holder's lock
    with engine.connect() as conn:
        assert conn.scalar(select(storage.Lock.owner)) == fresh.owner
    fresh.release()
    with engine.connect() as conn:
        assert conn.scalar(select(storage.Lock.owner)) is None


def test_advisory_keys_are_stable_and_distinct() -> None:
    assert locks.advisory_key("ticker:GOOG") == locks.advisory_key("ticker:GOOG")
    assert locks.advisory_key("ticker:GOOG") != locks.advisory_key("ticker:^GSPC")
    assert -(2**63) <= locks.advisory_key("ticker:GOOG") < 2**63
