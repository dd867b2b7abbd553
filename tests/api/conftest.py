"""API fixtures: an app on the parametrised database, seeded with prices, models and forecasts
written directly through the ORM (no training needed to test the HTTP layer). On SQLite the
seeded file is made once per session and copied for each test."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from apidata import seed
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from api import create_app
from forecaster import storage
from forecaster.settings import Settings


@pytest.fixture(scope="session")
def seeded_sqlite(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("seeded") / "seeded.db"
    shutil.copy(sqlite_template, path)
    engine = storage.make_engine(f"sqlite:///{path}")
    seed(storage.make_session_factory(engine))
    engine.dispose()  # the last connection's close folds the WAL into the file
    return path


@pytest.fixture
def app(
    settings: Settings,
    engine: Engine,
    sessions: sessionmaker[Session],
    request: pytest.FixtureRequest,
) -> Iterator[Flask]:
    database = storage.sqlite_file(settings.resolved_database_url)
    if database is not None:
        engine.dispose()  # nothing open on the file about to be replaced
        shutil.copy(request.getfixturevalue("seeded_sqlite"), database)
    else:
        seed(sessions)
    application = create_app(settings, engine)
    application.testing = False  # exercise the real error handlers (no exception propagation)
    yield application


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()
