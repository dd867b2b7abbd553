"""A PostgreSQL server that stops answering (through a proxy the test freezes): every request gets
a JSON 503 within the database timeout + 1 s, and 200s come back within 1 s of the thaw."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from apidata import seed
from faultproxy import FreezableProxy
from flask.testing import FlaskClient
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from api import create_app
from forecaster import dbtimeouts, storage
from forecaster.settings import Settings

TIMEOUT = 2.0
PATHS = (
    "/v1/tickers",
    "/v1/forecasts/GOOG",
    "/v1/runs",
    "/readyz",
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize(
        "db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
    ),
]


@pytest.fixture
def proxy(settings: Settings) -> Iterator[FreezableProxy]:
    url = make_url(settings.resolved_database_url)
    with FreezableProxy(url.host or "127.0.0.1", url.port or 5432) as p:
        yield p


@pytest.fixture
def proxied(
    settings: Settings, sessions: sessionmaker[Session], proxy: FreezableProxy
) -> Iterator[tuple[FlaskClient, Engine]]:
    seed(sessions)
    url = make_url(settings.resolved_database_url).set(host="127.0.0.1", port=proxy.port)
    through = settings.replace(
        database_url=url.render_as_string(hide_password=False),
        db_timeout_seconds=TIMEOUT,
        api_response_ttl=0.0,  # every request reads the database
    )
    engine = storage.make_engine(through.resolved_database_url, timeout=TIMEOUT)
    app = create_app(through, engine)
    yield app.test_client(), engine
    engine.dispose()


def _timed(client: FlaskClient, path: str) -> tuple[int, dict, float]:
    t0 = time.monotonic()
    response = client.get(path)
    return response.status_code, response.get_json(), time.monotonic() - t0


def test_frozen_database_answers_503_in_time_and_recovers(
    proxied: tuple[FlaskClient, Engine], proxy: FreezableProxy
) -> None:
    client, _ = proxied
    for path in PATHS:  # warm: pooled connections exist when the freeze starts
        assert client.get(path).status_code == 200, path

    proxy.freeze()
    for path in PATHS + PATHS[:2]:  # pooled connections first, then fresh connects
        status, body, seconds = _timed(client, path)
        assert status == 503, (path, body)
        assert body["error"]["code"] in ("database_unavailable", "not_ready"), body
        assert seconds < TIMEOUT + 1, (path, seconds)

    proxy.thaw()
    thawed = time.monotonic()
    for path in PATHS:
        status, body, _ = _timed(client, path)
        assert status == 200, (path, body)
    assert time.monotonic() - thawed < 1.0


def test_outside_a_request_each_wait_is_bounded_on_its_own(
    proxied: tuple[FlaskClient, Engine], proxy: FreezableProxy
) -> None:
    _, engine = proxied
    sessions = storage.make_session_factory(engine)
    with sessions() as s:
        assert storage.get_ticker(s, "GOOG") is not None
    proxy.freeze()
    t0 = time.monotonic()
    # The pool's ping times out, then its reconnect does.
    with (
        pytest.raises(OperationalError, match=r"did not answer|connection timeout"),
        sessions() as s,
    ):
        storage.get_ticker(s, "GOOG")
    assert time.monotonic() - t0 < 2 * TIMEOUT + 1
    proxy.thaw()
    with sessions() as s:
        assert storage.get_ticker(s, "GOOG") is not None


def test_an_overall_deadline_bounds_every_wait_inside_it_together(
    proxied: tuple[FlaskClient, Engine], proxy: FreezableProxy
) -> None:
    _, engine = proxied
    sessions = storage.make_session_factory(engine)
    proxy.freeze()
    t0 = time.monotonic()
    errors = []
    with dbtimeouts.deadline(TIMEOUT):
        for _ in range(3):  # alone, each attempt would wait the whole timeout again
            try:
                with sessions() as s:
                    storage.get_ticker(s, "GOOG")
            except OperationalError as exc:
                errors.append(exc)
    assert len(errors) == 3
    assert time.monotonic() - t0 < TIMEOUT + 1
    proxy.thaw()
