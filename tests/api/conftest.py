"""API fixtures: an app on the parametrised database, seeded with prices, models and forecasts
written directly through the ORM (no training needed to test the HTTP layer)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from apidata import seed
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from api import create_app
from forecaster.settings import Settings


@pytest.fixture
def app(settings: Settings, engine: Engine, sessions: sessionmaker[Session]) -> Iterator[Flask]:
    seed(sessions)
    application = create_app(settings, engine)
    application.testing = False  # exercise the real error handlers (no exception propagation)
    yield application


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()
